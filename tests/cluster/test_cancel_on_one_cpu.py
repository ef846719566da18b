"""Cancelling tasks queued behind a long one on one CPU (prefetched to its worker, or at the head), with and
without force: a cancelled one never runs, and a force cancel of the long one loses none of the others."""

from __future__ import annotations

import random
import time

import pytest

import nexus
from nexus.exceptions import TaskCancelledError
from tests.conftest import wait_until


@nexus.remote(num_cpus=0)
class Runs:
    def __init__(self) -> None:
        self.ran: list[int] = []

    def add(self, i: int) -> None:
        self.ran.append(i)

    def seen(self) -> list[int]:
        return self.ran


@nexus.remote(max_retries=0)
def counted(i: int, runs, sleep: bool) -> int:
    nexus.get(runs.add.remote(i))
    while sleep:
        time.sleep(0.05)
    return i


@pytest.mark.parametrize("force", [True, False])
def test_cancelled_tasks_queued_on_a_busy_worker_never_run_and_the_others_are_not_lost(one_cpu: None, force: bool) -> None:
    # On one CPU the tasks behind a long one wait for it on its worker (prefetched) or at the head. Cancelled, those
    # never run; a force cancel of the long one kills its worker, but not them: they are asked back first (with
    # max_retries=0, a lost one would fail).
    runs = Runs.remote()
    long = counted.remote(-1, runs, True)
    wait_until(lambda: nexus.get(runs.seen.remote()) == [-1], timeout=30)
    rest = [counted.remote(i, runs, False) for i in range(12)]
    dropped = rest[1::3]
    for ref in dropped:
        nexus.cancel(ref, force=force)
    nexus.cancel(long, force=True)  # (its loop would not see a cancel without force: it never calls into Nexus)
    for ref in [long, *dropped]:
        with pytest.raises(TaskCancelledError):
            nexus.get(ref, timeout=60)
    kept = [ref for ref in rest if ref not in dropped]
    assert nexus.get(kept, timeout=60) == [i for i in range(12) if i % 3 != 1]
    assert sorted(nexus.get(runs.seen.remote())) == [-1, *[i for i in range(12) if i % 3 != 1]], "a cancelled one ran"


@nexus.remote(max_retries=0)
def sleeps_or_returns(i: int, sleep: bool) -> int:
    while sleep:
        time.sleep(0.05)
    return i


def test_a_random_mix_of_force_cancels_on_one_cpu_settles_every_task(one_cpu: None) -> None:
    chosen = random.Random(7)
    first = sleeps_or_returns.remote(-1, True)
    sleeping = [chosen.random() < 0.5 for _ in range(40)]
    refs = [sleeps_or_returns.remote(i, s) for i, s in enumerate(sleeping)]
    cancelled = {i for i in range(40) if chosen.random() < 0.5}
    for i in cancelled:
        nexus.cancel(refs[i], force=True)
    nexus.cancel(first, force=True)
    for i, ref in enumerate(refs):
        if sleeping[i] and i not in cancelled:
            nexus.cancel(ref, force=True)
            cancelled.add(i)
        if i in cancelled:
            with pytest.raises(TaskCancelledError):
                nexus.get(ref, timeout=60)
        else:
            assert nexus.get(ref, timeout=60) == i
