"""``%load_ext nexus``: the ``%nexus`` line magic.

``%nexus init [num_cpus]``, ``%nexus status``, ``%nexus workers``,
``%nexus actors``, ``%nexus tasks [state]``, ``%nexus objects``,
``%nexus timeline [path]``, ``%nexus view``, ``%nexus trace``,
``%nexus shutdown``.
"""

from __future__ import annotations

import html
from dataclasses import asdict
from typing import Any

__all__ = ["load_ipython_extension"]

USAGE = (
    "%nexus init [num_cpus] | status | workers | actors | tasks [state] | objects | timeline [path] | view | trace | shutdown"
)


class _Table:
    """Records shown as an HTML table in a notebook and as text elsewhere."""

    def __init__(self, title: str, records: list[Any]) -> None:
        self.title = title
        self.rows = [asdict(r) if not isinstance(r, dict) else r for r in records]

    def _repr_html_(self) -> str:
        if not self.rows:
            return f"<b>{html.escape(self.title)}</b>: none"
        keys = list(self.rows[0])
        head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r[k]))}</td>" for k in keys) + "</tr>" for r in self.rows)
        return f"<b>{html.escape(self.title)}</b><table><tr>{head}</tr>{body}</table>"

    def __repr__(self) -> str:
        lines = [self.title + ":"] + ["  " + ", ".join(f"{k}={v}" for k, v in r.items()) for r in self.rows]
        return "\n".join(lines) if self.rows else f"{self.title}: none"


def nexus_magic(line: str) -> Any:
    import nexus

    words = line.split()
    command, rest = (words[0], words[1:]) if words else ("status", [])
    if command == "init":
        return nexus.init(num_cpus=int(rest[0]) if rest else None, ignore_reinit_error=True)
    if command == "shutdown":
        nexus.shutdown()
        return None
    if command == "status":
        summary = nexus.state.summary()
        store = summary.pop("object_store")
        summary["object store"] = f"{store['used'] / 2**20:.1f} of {store['capacity'] / 2**20:.0f} MiB, {store['objects']} objects"
        return _Table("Nexus cluster", [summary])
    if command == "workers":
        return _Table("workers", nexus.state.list_workers())
    if command == "actors":
        return _Table("actors", nexus.state.list_actors())
    if command == "tasks":
        filters = [("state", "=", rest[0])] if rest else None
        return _Table("tasks", nexus.state.list_tasks(filters=filters, limit=50))
    if command == "objects":
        return _Table("objects", nexus.state.list_objects(limit=50))
    if command == "timeline":
        path = rest[0] if rest else "nexus-timeline.json"
        trace = nexus.timeline(path)
        spans = sum(1 for e in trace["traceEvents"] if e.get("ph") == "X")
        return f"{spans} spans written to {path}: open it in https://ui.perfetto.dev"
    if command == "view":
        from .widgets import ClusterView

        return ClusterView()
    if command == "trace":
        from .widgets import TraceView

        return TraceView()
    return USAGE


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magic_function(nexus_magic, magic_kind="line", magic_name="nexus")
