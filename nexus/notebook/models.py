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


@dataclass
class ClusterModel:
    """Placement: fed with state snapshots (nexus.state) and ``sample`` events."""

    host: str = field(default_factory=socket.gethostname)
    workers: list[Any] = field(default_factory=list)  # WorkerState
    actors: list[Any] = field(default_factory=list)  # ActorState
    running: dict[str, list[str]] = field(default_factory=dict)  # worker -> names of what runs there
    load: dict[str, _Load] = field(default_factory=dict)
    version: int = 0  # bumped on every change: a view redraws only when it moved

    def update(self, workers: list[Any], actors: list[Any], running: dict[str, list[str]]) -> None:
        if (workers, actors, running) != (self.workers, self.actors, self.running):
            self.workers, self.actors, self.running = list(workers), list(actors), dict(running)
            self.version += 1

    def feed(self, events: list[Any]) -> None:
        for event in events:
            if event.kind == "sample":
                d = event.data
                self.load[d["worker"]] = _Load(d["cpu"], d["rss"], d["queued"])
                self.version += 1

    def tree(self) -> dict[str, Any]:
        """Host -> workers -> what runs on each; the data the HTML shows (``workers``: all of them, ``hosts``: the
        same rows by host, this host first)."""
        by_worker = {a.worker: a for a in self.actors if a.worker and a.class_name != DEVICE_ACTOR_CLASS and "/" not in a.actor_id}
        devices: dict[str, list[str]] = {}  # a bridge's worker -> the actors of its device
        hosted: dict[str, list[str]] = {}  # a virtual actors' host's worker -> the activations in it
        for a in self.actors:
            if a.worker and a.class_name == DEVICE_ACTOR_CLASS:
                devices.setdefault(a.worker, []).append(a.name if a.state == "alive" else f"{a.name} ({a.state})")
            elif a.worker and "/" in a.actor_id:  # (a virtual actor of shared hosting: its id is its host's/identity)
                hosted.setdefault(a.worker, []).append(a.name)
        rows = []
        hosts: dict[str, dict[str, Any]] = {self.host: {"host": self.host, "node_id": "", "workers": []}}
        for w in self.workers:
            actor = by_worker.get(w.name)
            load = self.load.get(w.name, _Load())
            rows.append(
                {
                    "worker": w.name,
                    "pid": w.pid,
                    "alive": w.alive,
                    "actor": None if actor is None else f"{actor.class_name} ({actor.actor_id})",
                    "actor_state": None if actor is None else actor.state,
                    "restarts": 0 if actor is None else actor.restarts,
                    "pending": w.tasks_in_flight if actor is None else actor.pending_calls,
                    "running": self.running.get(w.name, []),
                    "devices": devices.get(w.name, []),
                    "virtual": hosted.get(w.name, []),
                    "cpu": load.cpu,
                    "rss_mb": load.rss / 2**20,
                    "host": w.host or self.host,
                }
            )
            group = hosts.setdefault(rows[-1]["host"], {"host": rows[-1]["host"], "node_id": w.node_id, "workers": []})
            group["node_id"] = group["node_id"] or w.node_id
            group["workers"].append(rows[-1])
        groups = [g for g in hosts.values() if g["workers"]] or [hosts[self.host]]
        return {"host": self.host, "driver_pid": os.getpid(), "workers": rows, "hosts": groups}

    def to_html(self) -> str:
        tree = self.tree()
        groups = tree["hosts"]
        alive = [r for r in tree["workers"] if r["alive"]]
        title = (
            f"<b>{html.escape(tree['host'])}</b> (driver pid {tree['driver_pid']}): "
            if len(groups) == 1
            else f"<b>{len(groups)} hosts</b> (driver on {html.escape(tree['host'])}, pid {tree['driver_pid']}): "
        )
        head = "".join(f"<th>{h}</th>" for h in ("worker", "pid", "hosts", "running", "CPU", "memory", "waiting", "restarts"))
        tables = []
        for group in groups:
            rows = self._rows([r for r in group["workers"] if r["alive"]])
            caption = ""
            if len(groups) > 1:
                node = f" (node {html.escape(group['node_id'])})" if group["node_id"] else ""
                caption = f"<caption style='text-align:left'><b>{html.escape(group['host'])}</b>{node}: {len(rows)} workers</caption>"
            tables.append(f"<table class='nexus-host'>{caption}<tr>{head}</tr>{''.join(rows)}</table>")
        return (
            f"<div class='nexus-cluster'>{title}{len(alive)} workers, {sum(1 for r in alive if r['actor'])} actors{''.join(tables)}</div>"
        )

    @staticmethod
    def _rows(workers: list[dict[str, Any]]) -> list[str]:
        rows = []
        for r in workers:
            what = html.escape(r["actor"]) if r["actor"] else "tasks"
            if r.get("devices"):
                what += "".join(f"<br>&#8627; {html.escape(name)}" for name in r["devices"])  # (a bridge's device actors)
            if r.get("virtual"):  # (a host's activations: the first few, and how many in all)
                shown = r["virtual"][:HOSTED_SHOWN]
                what += "".join(f"<br>&#8627; {html.escape(name)}" for name in shown)
                if len(r["virtual"]) > len(shown):
                    what += f"<br>&#8627; and {len(r['virtual']) - len(shown)} more virtual actors"
            state = f" <i>{html.escape(r['actor_state'])}</i>" if r["actor_state"] and r["actor_state"] != "alive" else ""
            running = ", ".join(html.escape(n) for n in r["running"][:3]) or "idle"
            bar = min(100, int(r["cpu"]))
            rows.append(
                f"<tr><td>{html.escape(r['worker'])}</td><td>{r['pid']}</td><td>{what}{state}</td><td>{running}</td>"
                f"<td><div style='background:#ddd;width:80px'><div style='background:#4a90d9;width:{bar * 0.8:.0f}px'>&nbsp;"
                f"</div></div>{r['cpu']:.0f}%</td><td>{r['rss_mb']:.0f} MB</td><td>{r['pending']}</td><td>{r['restarts']}</td></tr>"
            )
        return rows
