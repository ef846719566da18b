"""The driver's event records, as the observation layer reads them.

The driver appends the cheapest tuples it can (see ``Runtime.observed``):
records are flat tuples of strings and numbers (a worker's name and pid,
not the worker; the timing the worker sent, unpacked), and a call's name is
``(class name, method)``, one tuple per method. :func:`expand`
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
    if raw[0] == "submitted" and isinstance(raw[3], tuple):
        return (*raw[:3], ".".join(raw[3]), *raw[4:])
    return raw
