"""Benchmark "observe": what observation costs the cluster, measured on and off side by side.

Method
------
The same patterns as ``cluster`` (tasks and 1:1 actor calls, one at a time
and submitted together), against a cluster started with ``observe=True``
(the default: every submission and finish recorded in the event ring, a
1 Hz sampler) and one with ``observe=False``. Only one cluster can run in a
process, so each round starts both in turn (alternating which goes first),
warms each pattern up, and measures each pattern several times in turn; the
headline is the median over rounds of each round's median. The "peer"
column is observation off; the target is on >= 0.9x off (at most 10% lost).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

from .cluster import _Side
from .harness import BenchmarkResult, Figure, Target, peer_result, progress

NAME = "observe"

LABELS = {
    "tasks_sync": "tasks, one at a time",
    "tasks_async": "tasks, submitted together",
    "actor_sync": "1:1 actor calls, one at a time",
    "actor_async": "1:1 actor calls, submitted together",
}


def _measure(observe: bool, n: int, repeats: int) -> dict[str, float]:
    """One cluster: each pattern warmed up once, then measured ``repeats`` times in turn; the median of each."""
    import nexus

    nexus.init(num_cpus=2, observe=observe)
    try:
        measures: dict[str, Callable[[], float]] = _Side(nexus).measures(n)
        for key in LABELS:  # the first runs pay for shipping functions and the prefaulter's start
            measures[key]()
        runs: dict[str, list[float]] = {key: [] for key in LABELS}
        for _ in range(repeats):
            for key in LABELS:
                runs[key].append(measures[key]())
        return {key: statistics.median(values) for key, values in runs.items()}
    finally:
        nexus.shutdown()


def run(quick: bool) -> BenchmarkResult:
    rounds = 2 if quick else 5
    n = 1000 if quick else 5000
    repeats = 1 if quick else 3
    samples: dict[str, dict[str, list[float]]] = {key: {"on": [], "off": []} for key in LABELS}
    for r in range(rounds):
        progress(f"{NAME}: round {r + 1}/{rounds}")
        order = (True, False) if r % 2 == 0 else (False, True)
        for observe in order:
            figures = _measure(observe, n, repeats)
            for key, value in figures.items():
                samples[key]["on" if observe else "off"].append(value)
    figures_out = [
        Figure(key, label, "/s", samples[key]["on"], samples[key]["off"], Target.ratio(0.9)) for key, label in LABELS.items()
    ]
    method = (
        f"median of {rounds} rounds, a fresh cluster per side per round (alternating which goes first); "
        f"in each, every pattern warmed up, then the median of {repeats} runs of {n:,} ops"
    )
    title = "Observation on (default) vs off: what the event ring costs"
    return peer_result(NAME, title, figures_out, "off", "off", quick, method)
