"""The driver's event records, as the observation layer reads them.

The driver appends the cheapest tuples it can (see ``Runtime.observed``):
a ``finished`` record holds the worker itself and the timing tuple the
worker sent, a call's name is ``(class name, method)``. :func:`expand`
turns any record into the flat form ``(kind, time_ns, *fields)`` with the
fields of :data:`FIELDS`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FIELDS", "expand"]

FIELDS: dict[str, tuple[str, ...]] = {
    "submitted": ("id", "name", "what", "trace", "parent", "by", "begin"),
    "finished": ("id", "worker", "pid", "start", "args", "run", "end", "ok"),
    "actor": ("actor", "state", "worker", "detail"),
    "worker": ("worker", "pid", "state", "detail"),
    "object": ("id", "state", "nbytes"),
    "sample": ("worker", "pid", "cpu", "rss", "queued"),
}


def expand(raw: tuple[Any, ...]) -> tuple[Any, ...]:
    kind = raw[0]
    if kind == "finished" and len(raw) == 5:
        _, ts, task_id, w, timing = raw
        return ("finished", ts, task_id, w.name, w.proc.pid if w.proc is not None else 0, *timing)
    if kind == "submitted" and isinstance(raw[3], tuple):
        return (*raw[:3], ".".join(raw[3]), *raw[4:])
    return raw
