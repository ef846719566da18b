"""Benchmark "microbench": the rest of Ray's ``ray microbenchmark`` patterns, Nexus beside Ray in one run.

(``cluster`` and ``store`` measure the single-client task and actor figures
and put/get; this module measures the others.)

multi-client tasks async   4 driver threads each submit N/4 tasks, then get them
1:n actor calls async      N calls spread over 4 actors, then one get
n:n actor calls async      4 driver threads, each calling its own actor
async-actor calls sync     ``get(a.m.remote())`` one at a time on an ``async def`` actor
concurrent actor calls     N calls to an actor with ``max_concurrency=4``, then one get
multi-client put           4 driver threads each put N/4 small objects
wait on 1k refs            ``wait(refs, num_returns=1000)`` on 1,000 finished refs
get of 10k refs            ``get`` of an object holding 10,000 ObjectRefs

Threads in the driver stand in for Ray's separate client processes (the GIL
makes this a harder test for Nexus, not an easier one). Median of the rounds,
alternating which side goes first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .harness import BenchmarkResult, Figure, Target, alternate_rounds, progress, rate, versus_ray

NAME = "microbench"
CLIENTS = 4

LABELS = {
    "multi_client_tasks": ("multi-client tasks async (4 threads)", "/s"),
    "actor_1_n": ("1:n actor calls async (4 actors)", "/s"),
    "actor_n_n": ("n:n actor calls async (4 threads, 4 actors)", "/s"),
    "async_actor_sync": ("async-actor calls, one at a time", "/s"),
    "concurrent_actor": ("actor calls, max_concurrency=4", "/s"),
    "multi_client_put": ("multi-client put (4 threads)", "/s"),
    "wait_1k": ("wait on 1,000 refs", "/s"),
    "get_10k_refs": ("get of an object holding 10,000 refs", "/s"),
}


def _threads(clients: int, body: Callable[[int], None]) -> float:
    """Seconds for ``clients`` threads to each run ``body(index)``."""
    threads = [threading.Thread(target=body, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


class _Side:
    def __init__(self, x: Any) -> None:
        self.x = x

        def noop() -> None:
            return None

        class Actor:
            def small(self) -> None:
                return None

        class AsyncActor:
            async def small(self) -> None:
                return None

        self.noop = x.remote(noop)
        self.actors = [x.remote(Actor).remote() for _ in range(CLIENTS)]
        self.async_actor = x.remote(AsyncActor).remote()
        self.concurrent = x.remote(Actor).options(max_concurrency=4).remote()
        x.get([a.small.remote() for a in self.actors] + [self.async_actor.small.remote(), self.concurrent.small.remote()])
        self.done_refs = [x.put(i) for i in range(1000)]
        self.holder = x.put([x.put(i) for i in range(10_000)])

    def measures(self, n: int) -> dict[str, Callable[[], float]]:
        x = self.x

        def multi_client_tasks() -> float:
            per = n // CLIENTS
            return rate(per * CLIENTS, _threads(CLIENTS, lambda _i: x.get([self.noop.remote() for _ in range(per)])))

        def actor_1_n() -> float:
            start = time.perf_counter()
            x.get([self.actors[i % CLIENTS].small.remote() for i in range(n)])
            return rate(n, time.perf_counter() - start)

        def actor_n_n() -> float:
            per = n // CLIENTS
            return rate(per * CLIENTS, _threads(CLIENTS, lambda i: x.get([self.actors[i].small.remote() for _ in range(per)])))

        def async_actor_sync() -> float:
            count = max(n // 5, 50)
            start = time.perf_counter()
            for _ in range(count):
                x.get(self.async_actor.small.remote())
            return rate(count, time.perf_counter() - start)

        def concurrent_actor() -> float:
            start = time.perf_counter()
            x.get([self.concurrent.small.remote() for _ in range(n)])
            return rate(n, time.perf_counter() - start)

        def multi_client_put() -> float:
            per = n // CLIENTS
            return rate(per * CLIENTS, _threads(CLIENTS, lambda _i: [x.put(0) for _ in range(per)]))

        def wait_1k() -> float:
            count = max(n // 100, 5)
            start = time.perf_counter()
            for _ in range(count):
                x.wait(self.done_refs, num_returns=len(self.done_refs))
            return rate(count, time.perf_counter() - start)

        def get_10k_refs() -> float:
            count = max(n // 500, 3)
            start = time.perf_counter()
            for _ in range(count):
                x.get(self.holder)
            return rate(count, time.perf_counter() - start)

        return {
            "multi_client_tasks": multi_client_tasks,
            "actor_1_n": actor_1_n,
            "actor_n_n": actor_n_n,
            "async_actor_sync": async_actor_sync,
            "concurrent_actor": concurrent_actor,
            "multi_client_put": multi_client_put,
            "wait_1k": wait_1k,
            "get_10k_refs": get_10k_refs,
        }


def run(quick: bool) -> BenchmarkResult:
    import nexus

    try:
        import ray
    except ImportError:
        ray = None
    rounds = 2 if quick else 3
    n_nexus, n_ray = (400, 100) if quick else (4000, 800)
    nexus.init(num_cpus=2)
    if ray is not None:
        progress(f"{NAME}: starting Ray")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        sides = {"nexus": _Side(nexus).measures(n_nexus)}
        if ray is not None:
            sides["ray"] = _Side(ray).measures(n_ray)
        samples = alternate_rounds([(key, {s: sides[s][key] for s in sides}) for key in LABELS], rounds, label=NAME)
    finally:
        nexus.shutdown()
        if ray is not None:
            ray.shutdown()
    figures = [
        Figure(key, label, unit, samples[key]["nexus"], samples[key].get("ray"), Target.ratio(10)) for key, (label, unit) in LABELS.items()
    ]
    return versus_ray(
        NAME,
        "The rest of ray microbenchmark: Nexus vs Ray 2.60.0",
        figures,
        ray,
        quick,
        f"median of {rounds} alternating rounds; {n_nexus:,} ops per Nexus measure, {n_ray:,} per Ray measure",
        [],
    )
