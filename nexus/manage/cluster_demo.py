"""``nexus demo``, first part: a local cluster at work.

Starts a cluster, runs tasks and actors, prints where each ran and the call
rates it reached, sends a large array through shared memory, and shuts down,
checking that no worker process and no shared-memory segment is left.
"""

from __future__ import annotations

import os
import time
from collections import Counter as Tally
from typing import Any

import nexus


@nexus.remote
def square(x: int) -> int:
    return x * x


@nexus.remote
def where_am_i() -> int:
    return os.getpid()


@nexus.remote
def checked_div(a: float, b: float) -> float:
    return a / b


@nexus.remote
def nbytes(array: Any) -> int:
    return int(array.nbytes)


@nexus.remote
class Account:
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.balance = 0

    def deposit(self, amount: int) -> int:
        self.balance += amount
        return self.balance

    def pid(self) -> int:
        return os.getpid()


def _rate(n: int, fn: Any) -> float:
    start = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - start)


def run_cluster_demo(quiet: bool = False) -> dict[str, float]:
    def say(line: str) -> None:
        if not quiet:
            print(line, flush=True)

    figures: dict[str, float] = {}
    start = time.perf_counter()
    info = nexus.init(num_cpus=2)
    try:
        first = nexus.get(square.remote(7))
        figures["init_to_first_result_s"] = time.perf_counter() - start
        say(f"local cluster: {info['workers']} worker processes over '{info['transport']}'; "
            f"init to first result {figures['init_to_first_result_s'] * 1000:.0f} ms (square(7) = {first})")

        pids = nexus.get([where_am_i.remote() for _ in range(40)])
        spread = ", ".join(f"pid {pid}: {count}" for pid, count in sorted(Tally(pids).items()))
        say(f"40 tasks ran in worker processes ({spread}); the driver is pid {os.getpid()}")

        alice = Account.remote("alice")  # type: ignore[attr-defined]  # class decorators keep the type to mypy
        balances = nexus.get([alice.deposit.remote(10) for _ in range(5)])
        alice.deposit.tell(50)
        say(f"actor Account('alice') in pid {nexus.get(alice.pid.remote())}: deposits -> {balances}, "
            f"after a tell of 50 -> {nexus.get(alice.deposit.remote(0))}")

        try:
            nexus.get(checked_div.remote(1, 0))
        except ZeroDivisionError as exc:
            say(f"a failing task raises its own exception in the driver: ZeroDivisionError({exc})")

        try:
            import numpy as np

            big = np.ones(25_000_000, dtype=np.int64)
            t = time.perf_counter()
            ref = nexus.put(big)
            size = nexus.get(nbytes.remote(ref))
            say(f"a {size / 1e6:.0f} MB array went to a worker through shared memory in {(time.perf_counter() - t) * 1000:.0f} ms")
        except ImportError:
            say("(numpy is not installed: skipping the large-array step)")

        n = 300 if quiet else 2000
        figures["tasks_sync"] = _rate(n, lambda k: [nexus.get(square.remote(i)) for i in range(k)])
        figures["tasks_async"] = _rate(n, lambda k: nexus.get([square.remote(i) for i in range(k)]))
        figures["actor_sync"] = _rate(n, lambda k: [nexus.get(alice.deposit.remote(1)) for _ in range(k)])
        figures["actor_async"] = _rate(n, lambda k: nexus.get([alice.deposit.remote(1) for _ in range(k)]))
        say(
            "call rates: tasks {tasks_sync:,.0f}/s one at a time, {tasks_async:,.0f}/s submitted together; "
            "actor calls {actor_sync:,.0f}/s one at a time, {actor_async:,.0f}/s submitted together".format(**figures)
        )
    finally:
        nexus.shutdown()
    leftovers = [name for name in os.listdir("/dev/shm") if name.startswith(f"nexus-{os.getpid()}-")]
    say(f"cluster shut down: {'no' if not leftovers else len(leftovers)} shared-memory segments left behind")
    return figures
