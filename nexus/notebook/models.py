"""What the notebook views show, as plain data: no widgets, no browser (so the logic is tested alone).

:class:`ClusterModel` is the placement tree (host -> workers -> the actor or
task each runs, with load, waiting work and restarts); :class:`TraceModel`
the recent spans per worker, grouped by host, with the caller -> callee
flows between them;
:class:`ProgressModel` a count of refs done. Each renders itself as HTML
(the live widgets show that HTML, and a saved notebook keeps it).
"""

from __future__ import annotations

import html
import itertools
import os
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..cluster.devices import DEVICE_ACTOR_CLASS

HOSTED_SHOWN = 5  # a virtual actors' host's activations named in its row (then: "and N more")

__all__ = ["ClusterModel", "ProgressModel", "Span", "TraceModel"]


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


@dataclass(frozen=True)
class Span:
    id: int
    name: str
    worker: str
    start: int  # ns
    end: int
    ok: bool
    parent: int


class TraceModel:
    """The spans of the last ``window`` seconds, per worker, and the flows between them."""

    def __init__(self, window: float = 10.0, keep: int = 5000) -> None:
        self.window = window
        self.paused = False
        self.spans: deque[Span] = deque(maxlen=keep)
        self._names: dict[int, tuple[str, int]] = {}  # id -> (name, parent) from submissions
        self.hosts: dict[str, str] = {}  # worker -> its host (rows are grouped by host when there are several)
        self.version = 0
        self.missed = 0

    def feed(self, events: list[Any], missed: int = 0) -> None:
        self.missed += missed
        if self.paused:
            return
        for event in events:
            d = event.data
            if event.kind == "submitted":
                self._names[d["id"]] = (d["name"], d["parent"])
            elif event.kind == "finished":
                name, parent = self._names.pop(d["id"], (f"{d['id']:x}", 0))
                self.spans.append(Span(d["id"], name, d["worker"], d["start"], d["end"], d["ok"], parent))
                self.version += 1
        if len(self._names) > 50_000:
            self._names.clear()

    def visible(self, now: int | None = None) -> list[Span]:
        if not self.spans:
            return []
        end = now if now is not None else max(s.end for s in self.spans)
        begin = end - int(self.window * 1e9)
        return [s for s in self.spans if s.end >= begin]

    def flows(self, spans: list[Span]) -> list[tuple[Span, Span]]:
        by_id = {s.id: s for s in spans}
        return [(by_id[s.parent], s) for s in spans if s.parent in by_id]

    def to_html(self, width: int = 720, row: int = 22) -> str:
        spans = self.visible()
        if not spans:
            return "<div class='nexus-trace'><i>no spans yet</i></div>"
        hosts = self.hosts
        workers = sorted({s.worker for s in spans}, key=lambda w: (hosts.get(w, ""), w))
        y = {w: i * row for i, w in enumerate(workers)}
        several = len({hosts.get(w, "") for w in workers}) > 1
        t1 = max(s.end for s in spans)
        t0 = t1 - int(self.window * 1e9)
        left = 160 if several else 100  # the labels' column
        scale = (width - left) / max(t1 - t0, 1)

        def x(t: int) -> float:
            return left + (max(t, t0) - t0) * scale

        def label(w: str) -> str:
            return f"{w} · {hosts[w]}" if several and w in hosts else w

        parts = [
            f"<text x='0' y='{y[w] + 15}' font-size='11'><title>{html.escape(hosts.get(w, ''))}</title>{html.escape(label(w))}</text>"
            for w in workers
        ]
        for a, b in itertools.pairwise(workers):  # a rule between hosts
            if several and hosts.get(a, "") != hosts.get(b, ""):
                parts.append(f"<line x1='0' y1='{y[b]}' x2='{width}' y2='{y[b]}' stroke='#bbb' stroke-dasharray='3,3'/>")
        for s in spans[-2000:]:
            color = "#4a90d9" if s.ok else "#d9534f"
            w = max(x(s.end) - x(s.start), 1.0)
            parts.append(
                f"<rect x='{x(s.start):.1f}' y='{y[s.worker] + 3}' width='{w:.1f}' height='{row - 6}' fill='{color}'>"
                f"<title>{html.escape(s.name)} ({(s.end - s.start) / 1e6:.2f} ms)</title></rect>"
            )
        for parent, child in self.flows(spans)[-500:]:
            parts.append(
                f"<line x1='{x(parent.start):.1f}' y1='{y[parent.worker] + row / 2}' x2='{x(child.start):.1f}' "
                f"y2='{y[child.worker] + row / 2}' stroke='#888' stroke-width='1' marker-end='url(#nx-arrow)'/>"
            )
        defs = (
            "<defs><marker id='nx-arrow' markerWidth='6' markerHeight='6' refX='5' refY='3' orient='auto'>"
            "<path d='M0,0 L6,3 L0,6 z' fill='#888'/></marker></defs>"
        )
        height = len(workers) * row + 4
        note = f" ({self.missed} events missed)" if self.missed else ""
        return (
            f"<div class='nexus-trace'>last {self.window:g} s, {len(spans)} spans{note}"
            f"<svg width='{width}' height='{height}'>{defs}{''.join(parts)}</svg></div>"
        )


class ProgressModel:
    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.failed = 0

    def to_html(self) -> str:
        share = 0 if not self.total else self.done / self.total
        return (
            f"<div class='nexus-progress'><progress value='{self.done}' max='{self.total}'></progress> "
            f"{self.done}/{self.total} ({share:.0%}){f', {self.failed} failed' if self.failed else ''}</div>"
        )
