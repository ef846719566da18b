"""Benchmark "store": the shared-memory object store side by side with Ray's, in one run.

Method
------
Both clusters run at once in this process (``nexus.init(num_cpus=2)`` and
``ray.init(num_cpus=2)``); rounds alternate which side goes first.

put large     ``put`` of an 800 MiB int64 array (``--quick``: 64 MiB), in GB/s;
              the ref is dropped after each put, so the store reuses the
              memory (an untimed put first, as in ``ray microbenchmark``)
get large     ``get`` of that array once stored: a read-only view, no copy
put small     ``put(0)``
get small     ``get`` of a stored small object

Targets (from the project's issue): each >= 10x Ray. Also measured, Nexus
alone: the store's memory overhead per object (arena rounding and the
driver's bookkeeping, over 2,000 objects of 100,000 bytes), and the inline
threshold: a task round trip with an array argument of 4 KiB-1 MiB, once
with every buffer inline in the message and once with every buffer in the
arena (two short-lived clusters with ``NEXUS_INLINE_MAX`` set), which is how
``ClusterConfig.inline_max`` was chosen.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from .harness import BenchmarkResult, Figure, Target, alternate_rounds, progress, timed_loop, versus_ray

NAME = "store"

THRESHOLD_SCRIPT = """
import json, sys, time
import numpy as np
import nexus
nexus.init(num_cpus=1)
@nexus.remote
def size_of(a):
    return a.nbytes
out = {}
for size in (4 << 10, 16 << 10, 64 << 10, 128 << 10, 256 << 10, 1 << 20):
    a = np.ones(size // 8)
    for _ in range(50):
        nexus.get(size_of.remote(a))
    n = 400
    start = time.perf_counter()
    for _ in range(n):
        nexus.get(size_of.remote(a))
    out[size] = n / (time.perf_counter() - start)
nexus.shutdown()
print(json.dumps(out))
"""


def _threshold_rates(inline_max: int) -> dict[int, float]:
    proc = subprocess.run(
        [sys.executable, "-c", THRESHOLD_SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, NEXUS_INLINE_MAX=str(inline_max)),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"threshold run failed: {proc.stderr[-2000:]}")
    return {int(k): v for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}


class _Side:
    def __init__(self, x: Any, large_bytes: int) -> None:
        import numpy as np

        self.x = x
        self.array = np.arange(large_bytes // 8, dtype=np.int64)
        x.get(x.put(self.array))  # untimed first puts: the store's memory is touched once
        self.stored = x.put(self.array)
        warm = x.put(self.array)
        del warm
        gc.collect()
        self.small = x.put(0)

    def put_large(self, puts: int) -> float:
        x = self.x
        start = time.perf_counter()
        for _ in range(puts):
            ref = x.put(self.array)
            del ref
        seconds = time.perf_counter() - start
        gc.collect()
        return self.array.nbytes * puts / seconds / 1e9

    def loop(self, n: int, body: Callable[[], Any]) -> float:
        return timed_loop(n, body)

    def measures(self, n: int, puts: int) -> dict[str, Callable[[], float]]:
        x = self.x
        return {
            "put_large": lambda: self.put_large(puts),
            "get_large": lambda: self.loop(n, lambda: x.get(self.stored)),
            "put_small": lambda: self.loop(n, lambda: x.put(0)),
            "get_small": lambda: self.loop(n, lambda: x.get(self.small)),
        }


def _overhead(nexus: Any) -> tuple[float, float]:
    """(bytes of arena rounding, bytes of driver bookkeeping) per object, over 2,000 objects of 100,000 bytes."""
    import numpy as np

    from nexus.cluster import api

    runtime = api._runtime()
    gc.collect()
    used_before = runtime.store_stats()["used"]
    tracemalloc.start()
    payload = np.ones(12_500)  # 100,000 bytes: not a whole number of pages
    refs = [nexus.put(payload) for _ in range(2000)]
    python_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    used = runtime.store_stats()["used"] - used_before
    rounding = (used - 2000 * payload.nbytes) / 2000
    refs_bytes = sum(sys.getsizeof(r) for r in refs)  # the caller's refs, not the store's
    del refs
    gc.collect()
    return rounding, (python_bytes - refs_bytes) / 2000


def run(quick: bool) -> BenchmarkResult:
    import nexus

    try:
        import ray
    except ImportError:
        ray = None
    large = (64 if quick else 800) << 20
    rounds = 2 if quick else 3
    n_nexus, n_ray = (1000, 200) if quick else (5000, 1000)
    notes: list[str] = []
    nexus.init(num_cpus=2)
    if ray is not None:
        progress(f"{NAME}: starting Ray")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        sides = {"nexus": _Side(nexus, large).measures(n_nexus, 2 if quick else 4)}
        if ray is not None:
            sides["ray"] = _Side(ray, large).measures(n_ray, 1 if quick else 2)
        figures_in = [(key, {side: sides[side][key] for side in sides}) for key in LABELS]
        samples = alternate_rounds(figures_in, rounds, label=NAME)
        rounding, bookkeeping = _overhead(nexus)
    finally:
        nexus.shutdown()
        if ray is not None:
            ray.shutdown()
    notes.append(
        f"memory overhead per object in the arena (2,000 x 100,000 B): {rounding:,.0f} B of page rounding "
        f"+ {bookkeeping:,.0f} B of driver bookkeeping"
    )
    if not quick:
        progress(f"{NAME}: inline threshold")
        inline, arena = _threshold_rates(2 << 20), _threshold_rates(1)
        for size in sorted(inline):
            notes.append(
                f"task round trip with a {size // 1024} KiB array: inline {inline[size]:,.0f}/s, "
                f"through the arena {arena[size]:,.0f}/s"
            )
    size_text = f"{large >> 20} MiB"
    figures = [
        Figure(key, label.format(size=size_text), unit, samples[key]["nexus"], samples[key].get("ray"), Target.ratio(10))
        for key, (label, unit) in LABELS.items()
    ]
    return versus_ray(
        NAME,
        "Object store: Nexus vs Ray 2.60.0",
        figures,
        ray,
        quick,
        f"median of {rounds} alternating rounds; {n_nexus:,} small ops per Nexus measure, {n_ray:,} per Ray measure",
        notes,
    )


LABELS = {
    "put_large": ("put of a {size} int64 array", "GB/s"),
    "get_large": ("get of that stored array", "/s"),
    "put_small": ("put of a small object", "/s"),
    "get_small": ("get of a small stored object", "/s"),
}
