"""Benchmark "views": what the notebook's live views cost the cluster, measured with them open and without.

Method
------
The same patterns as ``cluster`` (tasks and 1:1 actor calls, one at a time
and submitted together), on a cluster with a task stream and a ClusterView
open (``nexus.TaskStream()``, ``nexus.ClusterView()``: the pump feeding them
10 times a second, asking the head what each worker runs, packing and
sending a batch per tick) and on one with no view. Outside a kernel a
widget's messages go to no frontend, so this is the kernel's side of the
cost: what the driver's process spends (the browser draws in its own). Each round
starts a cluster, warms each pattern up, then measures each pattern with
the views open and with them closed in turn (closed, the hub's thread stops
as if none had been open); the headline is the median over rounds of each
round's median. The "peer" column is no view; the target is views open >= 0.95x.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from .cluster import _Side
from .harness import BenchmarkResult, Figure, Target, peer_result, progress

NAME = "views"

LABELS = {
    "tasks_sync": "tasks, one at a time",
    "tasks_async": "tasks, submitted together",
    "actor_sync": "1:1 actor calls, one at a time",
    "actor_async": "1:1 actor calls, submitted together",
}


def _round(n: int, repeats: int, views_first: bool) -> tuple[dict[str, list[float]], dict[str, list[float]], int]:
    """One cluster: each pattern warmed up, then ``repeats`` times each pattern with the views open and with none
    (alternating, ``views_first`` deciding which goes first); the rates with, without, and the batches sent."""
    import nexus

    nexus.init(num_cpus=2)
    try:
        measures: dict[str, Callable[[], float]] = _Side(nexus).measures(n)
        for key in LABELS:  # the first runs pay for shipping functions and the prefaulter's start
            measures[key]()
        on: dict[str, list[float]] = {key: [] for key in LABELS}
        off: dict[str, list[float]] = {key: [] for key in LABELS}
        sent = [0]
        for i in range(repeats * 2):
            views = (i % 2 == 0) == views_first
            opened: tuple[Any, ...] = ()
            if views:
                stream = nexus.TaskStream(window=10)
                send = stream.send

                def counted(*args: Any, send: Any = send, **kwargs: Any) -> None:
                    sent[0] += 1
                    send(*args, **kwargs)

                stream.send = counted  # type: ignore[method-assign]
                opened = (stream, nexus.ClusterView())
            for key in LABELS:
                (on if views else off)[key].append(measures[key]())
            for view in opened:  # (closed: the hub's thread stops at its next tick, as with no view ever)
                view.close()
            time.sleep(0.3)
        return on, off, sent[0]
    finally:
        nexus.shutdown()


def run(quick: bool) -> BenchmarkResult:
    rounds = 2 if quick else 5
    n = 1000 if quick else 5000
    repeats = 1 if quick else 3
    samples: dict[str, dict[str, list[float]]] = {key: {"on": [], "off": []} for key in LABELS}
    batches: list[int] = []
    for r in range(rounds):
        progress(f"{NAME}: round {r + 1}/{rounds}")
        on, off, sent = _round(n, repeats, views_first=r % 2 == 0)
        batches.append(sent)
        for key in LABELS:
            samples[key]["on"].append(statistics.median(on[key]))
            samples[key]["off"].append(statistics.median(off[key]))
    figures_out = [Figure(key, label, "/s", samples[key]["on"], samples[key]["off"], Target.ratio(0.95)) for key, label in LABELS.items()]
    method = (
        f"median of {rounds} rounds, a fresh cluster per round; in each, every pattern warmed up, then {repeats} runs "
        f"of {n:,} ops of each pattern with the views open and {repeats} with none, alternating (which goes first "
        f"alternates by round), the median of each; the task stream sent {min(batches)}-{max(batches)} batches "
        f"per round (at most one per 0.1 s tick)"
    )
    title = "A task stream and a ClusterView open vs no view: what the live views cost"
    return peer_result(NAME, title, figures_out, "no view", "no view", quick, method)
