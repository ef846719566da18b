"""Benchmark "cluster": the local cluster side by side with Ray, in one run.

Method
------
Both clusters run at once in this process (``nexus.init(num_cpus=2)`` and
``ray.init(num_cpus=2)``), each with its workers idle while the other side is
measured; rounds alternate which side goes first. The patterns are those of
Ray's own ``ray microbenchmark``:

tasks sync         ``get(f.remote())`` one at a time (f returns None)
tasks async        ``N`` submitted, then one ``get`` of the list
actor calls sync   ``get(a.m.remote())`` one at a time on one actor
actor calls async  ``N`` calls submitted to one actor, then one ``get``
get small          ``get`` of a stored small object (``put(0)`` made once)
put small          ``put(0)``

Targets (from the project's issue): tasks and actor calls >= 20x Ray,
small get/put >= 10x Ray. Init to first result is measured in a fresh
interpreter per side (``python -c "import X; X.init(num_cpus=2);
X.get(f.remote())"``, timed from before ``init`` to the result), target
<= 1/5 of Ray's (shown as a rate, 1/seconds, so that higher is better).

Each figure: a timed loop of ``N`` operations after an untimed warm-up of
``N / 10``; the headline is the median of the rounds (5, ``--quick``: 2 with
smaller counts). Without Ray installed only the Nexus figures are measured.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from .harness import BenchmarkResult, Figure, Target, alternate_rounds, progress, rate, timed_loop, versus_ray

NAME = "cluster"

INIT_SCRIPT = """
import time, sys
start = time.perf_counter()
import {module} as x
x.init(num_cpus=2{extra})
@x.remote
def f():
    return 1
assert x.get(f.remote()) == 1
print(time.perf_counter() - start)
x.shutdown()
"""


def _init_seconds(module: str) -> float:
    extra = ", include_dashboard=False, log_to_driver=False" if module == "ray" else ""
    proc = subprocess.run(
        [sys.executable, "-c", INIT_SCRIPT.format(module=module, extra=extra)],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{module} init failed: {proc.stderr[-2000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


class _Side:
    """The same patterns against one framework's module (``nexus`` or ``ray``)."""

    def __init__(self, x: Any) -> None:
        self.x = x

        def noop() -> None:
            return None

        class Actor:
            def small(self) -> None:
                return None

        self.noop = x.remote(noop)
        self.actor = x.remote(Actor).remote()
        self.stored = x.put(0)
        x.get(self.actor.small.remote())
        x.get(self.noop.remote())

    def loop(self, n: int, body: Callable[[], Any]) -> float:
        return timed_loop(n, body)

    def batch(self, n: int, submit: Callable[[], Any]) -> float:
        self.x.get([submit() for _ in range(max(n // 10, 5))])
        start = time.perf_counter()
        self.x.get([submit() for _ in range(n)])
        return rate(n, time.perf_counter() - start)

    def measures(self, n: int) -> dict[str, Callable[[], float]]:
        x = self.x
        return {
            "tasks_sync": lambda: self.loop(n, lambda: x.get(self.noop.remote())),
            "tasks_async": lambda: self.batch(n, self.noop.remote),
            "actor_sync": lambda: self.loop(n, lambda: x.get(self.actor.small.remote())),
            "actor_async": lambda: self.batch(n, self.actor.small.remote),
            "get_small": lambda: self.loop(n, lambda: x.get(self.stored)),
            "put_small": lambda: self.loop(n, lambda: x.put(0)),
        }


LABELS = {
    "tasks_sync": ("tasks, one at a time", Target.ratio(20)),
    "tasks_async": ("tasks, submitted together", Target.ratio(20)),
    "actor_sync": ("1:1 actor calls, one at a time", Target.ratio(20)),
    "actor_async": ("1:1 actor calls, submitted together", Target.ratio(20)),
    "get_small": ("get of a small stored object", Target.ratio(10)),
    "put_small": ("put of a small object", Target.ratio(10)),
}


def run(quick: bool) -> BenchmarkResult:
    import nexus

    try:
        import ray
    except ImportError:
        ray = None
    n_nexus = 1000 if quick else 5000
    n_ray = 200 if quick else 1000  # Ray is ~20x slower: a rate does not depend on the count
    rounds = 2 if quick else 5
    notes: list[str] = []
    init: dict[str, list[float]] = {"nexus": [], "ray": []}
    for _ in range(1 if quick else 3):
        init["nexus"].append(1 / _init_seconds("nexus"))
        if ray is not None:
            progress(f"{NAME}: Ray init (takes seconds)")
            init["ray"].append(1 / _init_seconds("ray"))
    nexus.init(num_cpus=2)
    if ray is not None:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        sides = {"nexus": _Side(nexus).measures(n_nexus)}
        if ray is not None:
            sides["ray"] = _Side(ray).measures(n_ray)
        figures_in = [(key, {side: sides[side][key] for side in sides}) for key in LABELS]
        samples = alternate_rounds(figures_in, rounds, label=NAME)
    finally:
        nexus.shutdown()
        if ray is not None:
            ray.shutdown()
    figures = [
        Figure("init", "init to first result (1/s)", "/s", init["nexus"], init["ray"] or None, Target.ratio(5)),
        *[
            Figure(key, label, "/s", samples[key]["nexus"], samples[key].get("ray"), target)
            for key, (label, target) in LABELS.items()
        ],
    ]
    seconds = sorted(1 / v for v in init["nexus"])[len(init["nexus"]) // 2]
    notes.append(f"Nexus init to first result: {seconds * 1000:.0f} ms")
    if init["ray"]:
        notes.append(f"Ray init to first result: {sorted(1 / v for v in init['ray'])[len(init['ray']) // 2]:.2f} s")
    return versus_ray(
        NAME,
        "Local cluster: Nexus vs Ray 2.60.0 (the patterns of `ray microbenchmark`)",
        figures,
        ray,
        quick,
        f"median of {rounds} alternating rounds; {n_nexus:,} ops per Nexus measure, {n_ray:,} per Ray measure",
        notes,
    )
