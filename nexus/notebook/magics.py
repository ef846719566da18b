"""``%load_ext nexus``: the ``%nexus`` line magic.

``%nexus init [num_cpus]``, ``%nexus status``, ``%nexus workers``,
``%nexus actors``, ``%nexus tasks [state]``, ``%nexus objects``,
``%nexus timeline [path]``, ``%nexus view``, ``%nexus trace``,
``%nexus shutdown``, ``%nexus help``.

The listings are :class:`Table` objects: an HTML table in a notebook
(styled with JupyterLab's theme variables, so it reads in light and dark
themes) and aligned columns as text, with values formatted for people
(durations, sizes, "—" for nothing).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "Table",
    "actors_table",
    "format_bytes",
    "format_duration",
    "load_ipython_extension",
    "misunderstood",
    "nexus_magic",
    "objects_table",
    "status_table",
    "tasks_table",
    "timeline_message",
    "workers_table",
]

SUBCOMMANDS = (
    ("init [num_cpus]", "start a cluster on this machine (or do nothing if one runs)"),
    ("status", "workers, actors, tasks, the object store and channels at a glance"),
    ("workers", "the worker processes"),
    ("actors", "the actors"),
    ("tasks [state]", "the recent tasks and calls (state: queued, running, finished or failed)"),
    ("objects", "the objects in the store"),
    ("timeline [path]", "write the recent tasks and calls as a Perfetto trace"),
    ("view", "a live ClusterView"),
    ("trace", "a live TraceView"),
    ("shutdown", "stop the cluster"),
    ("help", "this list"),
)
USAGE = "%nexus " + " | ".join(usage for usage, _ in SUBCOMMANDS)
TASK_STATES = ("queued", "running", "finished", "failed")
NOTHING = "—"  # what a table shows for a value that is not there (None)
SPARE_WORKER = "spare (for the next actor)"  # an actor worker started ahead, with no actor yet

# The theme's own colours (JupyterLab's CSS variables), with fallbacks for other front ends
_CELL = "padding:2px 10px;text-align:{align};border-bottom:1px solid var(--jp-border-color2, #ddd);white-space:nowrap"
_HEAD = "padding:2px 10px;text-align:{align};border-bottom:1px solid var(--jp-border-color1, #bbb);font-weight:bold"
_TABLE = "border-collapse:collapse;color:var(--jp-ui-font-color1, inherit);font-size:var(--jp-ui-font-size1, 13px)"
_CAPTION = "caption-side:top;text-align:left;font-weight:bold;padding:2px 0;color:var(--jp-ui-font-color1, inherit)"


class _Text(str):
    """A message the magic returns: shown as its text in a notebook, not as a quoted string."""

    __slots__ = ()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


class Table:
    """Rows of formatted values: an HTML table in a notebook (``_repr_html_``), aligned columns as text.

    ``right`` names the columns aligned right (numbers). Values are shown as given (``None`` as "—").
    """

    def __init__(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[str] = ()) -> None:
        self.title = title
        self.columns = list(columns)
        self.rows = [[NOTHING if v is None else str(v) for v in row] for row in rows]
        self.right = set(right)

    def _repr_html_(self) -> str:
        title = html.escape(self.title)
        if not self.rows:
            return f"<div class='nexus-table' style='color:var(--jp-ui-font-color1, inherit)'><b>{title}</b>: none</div>"

        def align(column: str) -> str:
            return "right" if column in self.right else "left"

        head = "".join(f"<th style='{_HEAD.format(align=align(c))}'>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>"
            + "".join(f"<td style='{_CELL.format(align=align(c))}'>{html.escape(v)}</td>" for c, v in zip(self.columns, row, strict=True))
            + "</tr>"
            for row in self.rows
        )
        return (
            f"<div class='nexus-table'><table style='{_TABLE}'><caption style='{_CAPTION}'>{title}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
        )

    def __repr__(self) -> str:
        if not self.rows:
            return f"{self.title}: none"
        widths = [max(len(c), *(len(row[i]) for row in self.rows)) for i, c in enumerate(self.columns)]

        def line(values: Sequence[str]) -> str:
            cells = [v.rjust(w) if c in self.right else v.ljust(w) for c, v, w in zip(self.columns, values, widths, strict=True)]
            return "  ".join(cells).rstrip()

        return "\n".join([self.title, line(self.columns), *(line(row) for row in self.rows)])


def format_duration(seconds: float | None) -> str:
    """``12.3 ms``, ``1.25 s``, ``2 min 05 s``; "—" for None (not finished)."""
    if seconds is None:
        return NOTHING
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def format_bytes(n: int | None) -> str:
    """``512 B``, ``1.5 KiB``, ``12.0 MiB``, ``7.06 GiB``."""
    if n is None:
        return NOTHING
    if n < 1024:
        return f"{n} B"
    for unit, scale in (("KiB", 2**10), ("MiB", 2**20)):
        if n < 1024 * scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 2**30:.2f} GiB"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _counts(by_state: dict[str, int], order: Sequence[str] = ()) -> str:
    """``{"alive": 2, "restarting": 1}`` -> "2 alive, 1 restarting" (the states in ``order`` first); "none"."""
    states = [s for s in order if by_state.get(s)] + sorted(s for s in by_state if s not in order and by_state[s])
    return ", ".join(f"{by_state[s]} {s}" for s in states) or "none"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _store(store: dict[str, Any]) -> str:
    text = f"{store['used'] / 2**20:.1f} of {store['capacity'] / 2**20:.0f} MiB, {_plural(store['objects'], 'object')}"
    if store.get("spilled_now"):
        text += f", {store['spilled_now']} spilled to disk ({format_bytes(store.get('spilled_bytes', 0))})"
    return text


def _value(value: Any) -> str:
    """A summary entry the status table has no wording of its own for."""
    if isinstance(value, dict):
        return ", ".join(f"{k.replace('_', ' ')} {_value(v)}" for k, v in value.items()) or "none"
    return str(value)


def status_table(summary: dict[str, Any]) -> Table:
    """``nexus.state.summary()`` as a two-column table (what, value)."""
    summary = dict(summary)
    rows: list[tuple[str, str]] = []
    if "driver_pid" in summary:
        rows.append(("driver", f"pid {summary.pop('driver_pid')}"))
    if "workers" in summary:
        rows.append(("workers", f"{summary.pop('workers')} alive"))
    if "actors" in summary:
        rows.append(("actors", _counts(summary.pop("actors"), ("alive", "starting", "restarting", "dead"))))
    if "tasks" in summary:
        rows.append(("tasks (recent)", _counts(summary.pop("tasks"), TASK_STATES)))
    if "object_store" in summary:
        rows.append(("object store", _store(summary.pop("object_store"))))
    if "channels" in summary:
        channels = summary.pop("channels")
        rejected, dropped = channels.get("rejected_messages", 0), channels.get("dropped", 0)
        rows.append(("channels", f"{_plural(rejected, 'message')} rejected, {_plural(dropped, 'channel')} dropped as corrupt"))
    rows += [(key.replace("_", " "), _value(value)) for key, value in summary.items()]
    return Table("Nexus cluster", ["what", "value"], rows)


def workers_table(workers: Sequence[Any]) -> Table:
    def actor(w: Any) -> str | None:
        return w.actor if w.actor is not None or w.kind != "actor" else SPARE_WORKER

    rows = [(w.name, w.pid, w.kind, _yes(w.alive), actor(w), w.tasks_in_flight, w.node_id, w.host) for w in workers]
    return Table("workers", ["name", "pid", "kind", "alive", "actor", "in flight", "node", "host"], rows, right=["pid", "in flight"])


def actors_table(actors: Sequence[Any]) -> Table:
    rows = [
        (
            a.actor_id,
            a.class_name,
            a.name,
            a.namespace,
            a.state,
            a.worker,
            a.pid,
            a.restarts,
            a.pending_calls,
            a.death_cause or a.waiting_for,
        )
        for a in actors
    ]
    columns = ["id", "class", "name", "namespace", "state", "worker", "pid", "restarts", "pending calls", "why (dead / waiting)"]
    return Table("actors", columns, rows, right=["pid", "restarts", "pending calls"])


def tasks_table(tasks: Sequence[Any], title: str = "tasks") -> Table:
    rows = [(t.task_id, t.name, t.kind, t.state, t.worker, t.submitted_by, format_duration(t.duration_s), t.waiting_for) for t in tasks]
    columns = ["id", "name", "kind", "state", "worker", "submitted by", "duration", "waiting for"]
    return Table(title, columns, rows, right=["duration"])


def objects_table(objects: Sequence[Any]) -> Table:
    rows = [(o.object_id, format_bytes(o.nbytes), o.where, o.refs, o.pins, o.node_id or None) for o in objects]
    return Table("objects", ["id", "size", "where", "refs", "pins", "node"], rows, right=["size", "refs", "pins"])


def timeline_message(trace: dict[str, Any], path: str) -> str:
    """What ``%nexus timeline`` says: how many tasks and calls it wrote (not their phases or submissions)."""
    spans = sum(1 for e in trace["traceEvents"] if e.get("ph") == "X" and e.get("cat") in ("task", "call"))
    return f"{spans} task and call spans written to {path}: open it in https://ui.perfetto.dev"


def _help() -> _Text:
    width = max(len(usage) for usage, _ in SUBCOMMANDS)
    return _Text("\n".join(f"%nexus {usage.ljust(width)}  {what}" for usage, what in SUBCOMMANDS))


def misunderstood(words: Sequence[str]) -> str | None:
    """What the magic says to a line it does not understand, naming the word it stops at; None for a good line."""
    usages = {usage.split()[0]: usage for usage, _ in SUBCOMMANDS}
    command, rest = (words[0], list(words[1:])) if words else ("status", [])
    if command not in usages:
        return f"%nexus does not know {command!r}. Its subcommands: {', '.join(usages)} (%nexus help says what each does)."
    takes = len(usages[command].split()) - 1  # how many words may follow it
    if len(rest) > takes:
        word = rest[takes]
    elif command == "init" and rest and not rest[0].isdigit():
        word = rest[0]
    elif command == "tasks" and rest and rest[0] not in TASK_STATES:
        return f"%nexus tasks does not know {rest[0]!r}: the states are {', '.join(TASK_STATES)}."
    else:
        return None
    return f"%nexus {command} does not know {word!r}: it is used as %nexus {usages[command]}."


def nexus_magic(line: str) -> Any:
    """``%nexus <subcommand>``: see :data:`SUBCOMMANDS`; without one, ``status``."""
    import nexus

    words = line.split()
    message = misunderstood(words)
    if message is not None:
        print(message)  # (a returned string would show as a quoted repr)
        return None
    command, rest = (words[0], words[1:]) if words else ("status", [])
    if command == "init":
        return nexus.init(num_cpus=int(rest[0]) if rest else None, ignore_reinit_error=True)
    if command == "shutdown":
        nexus.shutdown()
        return None
    if command == "tasks":
        filters = [("state", "=", rest[0])] if rest else None
        return tasks_table(nexus.state.list_tasks(filters=filters, limit=50), f"{rest[0]} tasks" if rest else "tasks")
    if command == "timeline":
        path = rest[0] if rest else "nexus-timeline.json"
        return _Text(timeline_message(nexus.timeline(path), path))
    if command in ("view", "trace"):
        from .. import notebook  # (its views import ipywidgets: only now)

        return getattr(notebook, "ClusterView" if command == "view" else "TraceView")()
    tables: dict[str, Callable[[], Any]] = {
        "status": lambda: status_table(nexus.state.summary()),
        "workers": lambda: workers_table(nexus.state.list_workers()),
        "actors": lambda: actors_table(nexus.state.list_actors()),
        "objects": lambda: objects_table(nexus.state.list_objects(limit=50)),
        "help": _help,
    }
    return tables[command]()


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magic_function(nexus_magic, magic_kind="line", magic_name="nexus")
