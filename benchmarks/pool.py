"""Benchmark "pool": the local cluster beside ``multiprocessing.Pool(2)`` (spawn), in one run.

start + first result   a fresh interpreter: create the pool or cluster, get one result (1/s, higher is better)
apply, one at a time   ``pool.apply(f)`` vs ``nexus.get(f.remote())``
apply_async together   N ``apply_async`` then their results vs N ``.remote()`` then one ``get``

The Pool runs a builtin (``abs``) so that spawn can find it by reference; Nexus
runs an equivalent task defined in the script. No targets: the issue sets
none against the Pool, and the Pool is the faster of the two to start and for
trivial functions submitted together (its feeder thread batches them into one
pipe); these figures say by how much.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time

from .harness import BenchmarkResult, Figure, alternate_rounds, peer_result, rate, timed_loop

NAME = "pool"

START = {
    "nexus": "import time; t = time.perf_counter(); import nexus; nexus.init(num_cpus=2)\n"
    "f = nexus.remote(lambda: 1)\nassert nexus.get(f.remote()) == 1\nprint(time.perf_counter() - t); nexus.shutdown()",
    "pool": "import time; t = time.perf_counter(); import multiprocessing as mp\n"
    "p = mp.get_context('spawn').Pool(2)\nassert p.apply(abs, (-1,)) == 1\nprint(time.perf_counter() - t); p.terminate()",
}


def _start(side: str) -> float:
    out = subprocess.run([sys.executable, "-c", START[side]], capture_output=True, text=True, timeout=120, env=dict(os.environ))
    if out.returncode != 0:
        raise RuntimeError(f"{side} start failed: {out.stderr[-1000:]}")
    return 1 / float(out.stdout.strip().splitlines()[-1])


def run(quick: bool) -> BenchmarkResult:
    import nexus

    rounds = 2 if quick else 5
    n = 1000 if quick else 5000
    starts: dict[str, list[float]] = {"nexus": [], "pool": []}
    for _ in range(1 if quick else 3):
        for side, values in starts.items():
            values.append(_start(side))
    nexus.init(num_cpus=2)
    pool = multiprocessing.get_context("spawn").Pool(2)
    try:
        def absolute(x: int) -> int:
            return abs(x)

        one = nexus.remote(absolute)
        nexus.get(one.remote(-1))
        pool.apply(abs, (-1,))

        def nexus_batch() -> float:
            start = time.perf_counter()
            nexus.get([one.remote(-1) for _ in range(n)])
            return rate(n, time.perf_counter() - start)

        def pool_batch() -> float:
            start = time.perf_counter()
            results = [pool.apply_async(abs, (-1,)) for _ in range(n)]
            for r in results:
                r.get()
            return rate(n, time.perf_counter() - start)

        samples = alternate_rounds(
            [
                (
                    "apply",
                    {
                        "nexus": lambda: timed_loop(n, lambda: nexus.get(one.remote(-1))),
                        "pool": lambda: timed_loop(n, lambda: pool.apply(abs, (-1,))),
                    },
                ),
                ("apply_async", {"nexus": nexus_batch, "pool": pool_batch}),
            ],
            rounds,
            label=NAME,
        )
    finally:
        pool.terminate()
        pool.join()
        nexus.shutdown()
    figures = [
        Figure("start", "start + first result (1/s)", "/s", starts["nexus"], starts["pool"]),
        Figure("apply", "apply, one at a time", "/s", samples["apply"]["nexus"], samples["apply"]["pool"]),
        Figure(
            "apply_async",
            "apply_async, submitted together",
            "/s",
            samples["apply_async"]["nexus"],
            samples["apply_async"]["pool"],
        ),
    ]
    title = "Local cluster vs multiprocessing.Pool(2) (spawn)"
    method = f"median of {rounds} alternating rounds; {n:,} calls per measure"
    return peer_result(NAME, title, figures, "pool", "Pool", quick, method)
