"""Benchmark "views": what the notebook's live views cost the cluster, measured with them open and without.

Method
------
The same patterns as ``cluster`` (tasks and 1:1 actor calls, one at a time
and submitted together), on a cluster with a task stream and a ClusterView
open (``nexus.TaskStream()``, ``nexus.ClusterView()``: the pump feeding them
10 times a second, asking the head what each worker runs, packing and
sending a batch per tick) and on one with no view. Outside a kernel a
widget's messages go to no frontend, so this is the kernel's side of the
cost: what the driver's process spends (the browser draws in its own). Only
one cluster can run in a process, so each round starts both in turn
(alternating which goes first), warms each pattern up and measures each
several times; the headline is the median over rounds of each round's
median. The "peer" column is no view; the target is views open >= 0.95x.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

from .cluster import _Side
from .harness import BenchmarkResult, Figure, Target, peer_result, progress

NAME = "views"

LABELS = {
    "tasks_sync": "tasks, one at a time",
    "tasks_async": "tasks, submitted together",
    "actor_sync": "1:1 actor calls, one at a time",
    "actor_async": "1:1 actor calls, submitted together",
}


def _measure(views: bool, n: int, repeats: int) -> tuple[dict[str, float], int]:
    """One cluster: each pattern warmed up once, then measured ``repeats`` times in turn; the median of each,
    and how many batches the task stream sent."""
    import nexus

    nexus.init(num_cpus=2)
    try:
        sent = [0]
        if views:
            stream = nexus.TaskStream(window=10)
            send = stream.send

            def counted(*args: object, **kwargs: object) -> None:
                sent[0] += 1
                send(*args, **kwargs)

            stream.send = counted  # type: ignore[method-assign]
            opened = (stream, nexus.ClusterView())
        measures: dict[str, Callable[[], float]] = _Side(nexus).measures(n)
        for key in LABELS:  # the first runs pay for shipping functions and the prefaulter's start
            measures[key]()
        runs: dict[str, list[float]] = {key: [] for key in LABELS}
        for _ in range(repeats):
            for key in LABELS:
                runs[key].append(measures[key]())
        if views:
            del opened
        return {key: statistics.median(values) for key, values in runs.items()}, sent[0]
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
        order = (True, False) if r % 2 == 0 else (False, True)
        for views in order:
            figures, sent = _measure(views, n, repeats)
            if views:
                batches.append(sent)
            for key, value in figures.items():
                samples[key]["on" if views else "off"].append(value)
    figures_out = [Figure(key, label, "/s", samples[key]["on"], samples[key]["off"], Target.ratio(0.95)) for key, label in LABELS.items()]
    method = (
        f"median of {rounds} rounds, a fresh cluster per side per round (alternating which goes first); "
        f"in each, every pattern warmed up, then the median of {repeats} runs of {n:,} ops; "
        f"the task stream sent {min(batches)}-{max(batches)} batches per round (at most one per 0.1 s tick)"
    )
    title = "A task stream and a ClusterView open vs no view: what the live views cost"
    return peer_result(NAME, title, figures_out, "no view", "no view", quick, method)
