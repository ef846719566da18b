"""What the notebook views show, as plain data: no widgets, no browser (so the logic is tested alone).

:class:`ClusterModel` is the placement tree (host -> workers -> the actor or
task each runs, with load, waiting work and restarts); the task stream's is
:mod:`nexus.notebook.stream`, progress's :mod:`nexus.notebook.progress`. Each renders itself as HTML
(the live widgets show that HTML, and a saved notebook keeps it).
"""

from __future__ import annotations

import html
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from ..cluster.devices import DEVICE_ACTOR_CLASS

HOSTED_SHOWN = 5  # a virtual actors' host's activations named in its row (then: "and N more")

__all__ = ["ClusterModel"]


@dataclass
class _Load:
    cpu: float = 0.0
    rss: int = 0
    queued: int = 0


# The placement map's look, in JupyterLab's theme (its CSS variables; the fallbacks where none is set).
STYLE = """<style>
.nexus-cluster { color: var(--jp-ui-font-color1, inherit); font-family: var(--jp-ui-font-family, inherit); }
.nexus-cluster .nx-summary { margin-bottom: 4px; }
.nexus-cluster .nx-backlog { color: var(--jp-ui-font-color2, #616161); }
.nexus-cluster .nx-hosthead { margin: 6px 0 2px; }
.nexus-cluster table { border-collapse: collapse; }
.nexus-cluster th { text-align: left; font-weight: 600; padding: 2px 10px 2px 0;
  border-bottom: 1px solid var(--jp-border-color1, #bdbdbd); }
.nexus-cluster td { padding: 2px 10px 2px 0; vertical-align: top; border-bottom: 1px solid var(--jp-border-color3, #eee); }
.nexus-cluster .nx-meter { display: inline-flex; align-items: center; gap: 6px; white-space: nowrap; }
.nexus-cluster .nx-track { display: inline-block; width: 80px; height: 9px; border-radius: 2px;
  background: var(--jp-layout-color3, #ddd); overflow: hidden; vertical-align: middle; }
.nexus-cluster .nx-fill { display: block; height: 100%; background: var(--jp-brand-color1, #1976d2); }
.nexus-cluster .nx-fill.nx-store { background: var(--jp-warn-color1, #f57c00); }
.nexus-cluster .nx-muted { color: var(--jp-ui-font-color2, #616161); }
.nexus-cluster .nx-state-running { color: var(--jp-success-color1, #388e3c); }
.nexus-cluster .nx-state-blocked { color: var(--jp-warn-color1, #f57c00); }
.nexus-cluster .nx-state-dead, .nexus-cluster .nx-bad { color: var(--jp-error-color1, #d32f2f); }
</style>"""


def _bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _meter(share: float, text: str, store: bool = False) -> str:
    width = max(0.0, min(share, 1.0)) * 100
    fill = "nx-fill nx-store" if store else "nx-fill"
    return (
        f"<span class='nx-meter'><span class='nx-track'><span class='{fill}' style='width:{width:.0f}%'></span></span>"
        f"{html.escape(text)}</span>"
    )


@dataclass
class ClusterModel:
    """The placement map: hosts -> workers -> the actor or tasks on each, with each worker's real state (what it
    runs, what was sent ahead to it, whether it waits in get), its load, each host's memory and object store, and
    the backlog at the head. Fed with state snapshots (``nexus.state.placement``, ``activity``) and ``sample``
    events."""

    host: str = field(default_factory=socket.gethostname)
    workers: list[Any] = field(default_factory=list)  # WorkerState
    actors: list[Any] = field(default_factory=list)  # ActorState
    running: dict[str, list[str]] = field(default_factory=dict)  # worker -> names of what runs there
    load: dict[str, _Load] = field(default_factory=dict)
    activity: Any = None  # the last nexus.state.activity() (None: not looked at)
    version: int = 0  # bumped on every change: a view redraws only when it moved

    def update(self, workers: list[Any], actors: list[Any], running: dict[str, list[str]]) -> None:
        if (workers, actors, running) != (self.workers, self.actors, self.running):
            self.workers, self.actors, self.running = list(workers), list(actors), dict(running)
            self.version += 1

    def look(self, activity: Any) -> None:
        """What each worker does now, the backlog, the stores (``nexus.state.activity()``)."""
        before = self.activity
        if before is None or (before.workers, before.hosts, before.queued, before.waiting, before.calls_queued) != (
            activity.workers,
            activity.hosts,
            activity.queued,
            activity.waiting,
            activity.calls_queued,
        ):
            self.version += 1
        self.activity = activity

    def feed(self, events: list[Any]) -> None:
        for event in events:
            if event.kind == "sample":
                d = event.data
                self.load[d["worker"]] = _Load(d["cpu"], d["rss"], d["queued"])
                self.version += 1

    def tree(self) -> dict[str, Any]:
        """Host -> workers -> what runs on each; the data the HTML shows (``workers``: all of them, ``hosts``: the
        same rows by host, this host first, each with its memory and object store)."""
        by_worker = {a.worker: a for a in self.actors if a.worker and a.class_name != DEVICE_ACTOR_CLASS and "/" not in a.actor_id}
        devices: dict[str, list[str]] = {}  # a bridge's worker -> the actors of its device
        hosted: dict[str, list[str]] = {}  # a virtual actors' host's worker -> the activations in it
        for a in self.actors:
            if a.worker and a.class_name == DEVICE_ACTOR_CLASS:
                devices.setdefault(a.worker, []).append(a.name if a.state == "alive" else f"{a.name} ({a.state})")
            elif a.worker and "/" in a.actor_id:  # (a virtual actor of shared hosting: its id is its host's/identity)
                hosted.setdefault(a.worker, []).append(a.name)
        doing = {w.worker: w for w in self.activity.workers} if self.activity is not None else {}
        stores = {h.node_id: h for h in self.activity.hosts} if self.activity is not None else {}
        rows = []
        hosts: dict[str, dict[str, Any]] = {self.host: {"host": self.host, "node_id": "", "workers": []}}
        for w in self.workers:
            actor = by_worker.get(w.name)
            load = self.load.get(w.name)
            now = doing.get(w.name)
            rows.append(
                {
                    "worker": w.name,
                    "pid": w.pid,
                    "alive": w.alive,
                    "kind": "actor" if actor is not None else ("spare" if w.kind == "actor" else "tasks"),
                    "actor": None if actor is None else f"{actor.class_name} ({actor.actor_id})",
                    "actor_state": None if actor is None else actor.state,
                    "restarts": 0 if actor is None else actor.restarts,
                    "pending": w.tasks_in_flight if actor is None else actor.pending_calls,
                    "state": now.state if now is not None else ("running" if self.running.get(w.name) else "idle"),
                    "running": [r.name for r in now.running] if now is not None else self.running.get(w.name, []),
                    "prefetched": now.prefetched if now is not None else 0,
                    "devices": devices.get(w.name, []),
                    "virtual": hosted.get(w.name, []),
                    "cpu": None if load is None else load.cpu,  # (None: no sample yet)
                    "rss": None if load is None else load.rss,
                    "host": w.host or self.host,
                }
            )
            group = hosts.setdefault(rows[-1]["host"], {"host": rows[-1]["host"], "node_id": w.node_id, "workers": []})
            group["node_id"] = group["node_id"] or w.node_id
            group["workers"].append(rows[-1])
        groups = [g for g in hosts.values() if g["workers"]] or [hosts[self.host]]
        for g in groups:
            store = stores.get(g["node_id"])
            g["store_used"], g["store_capacity"] = (store.store_used, store.store_capacity) if store is not None else (None, None)
            sampled = [r["rss"] for r in g["workers"] if r["alive"] and r["rss"] is not None]
            g["rss"] = sum(sampled) if sampled else None
        a = self.activity
        backlog = {"queued": a.queued, "waiting": a.waiting, "calls_queued": a.calls_queued} if a is not None else None
        return {"host": self.host, "driver_pid": os.getpid(), "workers": rows, "hosts": groups, "backlog": backlog}

    def to_html(self) -> str:
        tree = self.tree()
        groups = tree["hosts"]
        alive = [r for r in tree["workers"] if r["alive"]]
        title = (
            f"<b>{html.escape(tree['host'])}</b> (driver pid {tree['driver_pid']}): "
            if len(groups) == 1
            else f"<b>{len(groups)} hosts</b> (driver on {html.escape(tree['host'])}, pid {tree['driver_pid']}): "
        )
        busy = sum(1 for r in alive if r["state"] in ("running", "blocked"))
        actors = sum(1 for r in alive if r["actor"])
        summary = f"{title}{_count(len(alive), 'worker')} ({busy} busy), {_count(actors, 'actor')}"
        backlog = tree["backlog"]
        if backlog is not None:
            summary += (
                f" <span class='nx-backlog'>· at the head: {backlog['queued']} tasks waiting for a worker, "
                f"{backlog['waiting']} for their arguments, {backlog['calls_queued']} actor calls held</span>"
            )
        head = "".join(f"<th>{h}</th>" for h in ("worker", "pid", "hosts", "doing", "CPU", "memory", "restarts"))
        tables = []
        for group in groups:
            rows = self._rows([r for r in group["workers"] if r["alive"]])
            node = f" (node {html.escape(group['node_id'])})" if group["node_id"] else ""
            parts = [f"<b>{html.escape(group['host'])}</b>{node}: {_count(len(rows), 'worker')}"]
            if group["rss"] is not None:
                parts.append(f"memory {_bytes(group['rss'])}")
            if group["store_capacity"]:
                used, capacity = group["store_used"], group["store_capacity"]
                parts.append("object store " + _meter(used / capacity, f"{_bytes(used)} of {_bytes(capacity)}", store=True))
            heading = f"<div class='nx-hosthead'>{' · '.join(parts)}</div>"
            tables.append(f"{heading}<table class='nexus-host'><tr>{head}</tr>{''.join(rows)}</table>")
        return f"{STYLE}<div class='nexus-cluster'><div class='nx-summary'>{summary}</div>{''.join(tables)}</div>"

    @staticmethod
    def _doing(r: dict[str, Any]) -> str:
        running = ", ".join(html.escape(n) for n in r["running"][:3])
        if len(r["running"]) > 3:
            running += f" and {len(r['running']) - 3} more"
        ahead = r["prefetched"]
        if r["state"] == "blocked":
            text = f"<span class='nx-state-blocked'>waiting in get</span> ({running})" if running else "waiting in get"
        elif running:
            text = f"<span class='nx-state-running'>running</span> {running}"
        else:
            text = f"<span class='nx-muted'>{html.escape(r['state'])}</span>"
        if ahead:
            text += f" <span class='nx-muted'>· {ahead} {'queued' if r['actor'] else 'sent ahead'}</span>"
        return text

    @classmethod
    def _rows(cls, workers: list[dict[str, Any]]) -> list[str]:
        rows = []
        for r in workers:
            if r["actor"]:
                what = html.escape(r["actor"])
            elif r["kind"] == "spare":
                what = "<span class='nx-muted'>spare (for the next actor)</span>"
            else:
                what = "tasks"
            if r.get("devices"):
                what += "".join(f"<br>&#8627; {html.escape(name)}" for name in r["devices"])  # (a bridge's device actors)
            if r.get("virtual"):  # (a host's activations: the first few, and how many in all)
                shown = r["virtual"][:HOSTED_SHOWN]
                what += "".join(f"<br>&#8627; {html.escape(name)}" for name in shown)
                if len(r["virtual"]) > len(shown):
                    what += f"<br>&#8627; and {len(r['virtual']) - len(shown)} more virtual actors"
            if r["actor_state"] and r["actor_state"] != "alive":
                what += f" <i class='nx-bad'>{html.escape(r['actor_state'])}</i>"
            cpu = "<span class='nx-muted'>—</span>" if r["cpu"] is None else _meter(r["cpu"] / 100, f"{r['cpu']:.0f}%")
            memory = "<span class='nx-muted'>—</span>" if r["rss"] is None else _bytes(r["rss"])
            rows.append(
                f"<tr><td>{html.escape(r['worker'])}</td><td>{r['pid']}</td><td>{what}</td><td>{cls._doing(r)}</td>"
                f"<td>{cpu}</td><td>{memory}</td><td>{r['restarts']}</td></tr>"
            )
        return rows
