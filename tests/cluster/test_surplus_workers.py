"""Tasks waiting in get lend their CPUs: queued tasks that are not the ones they wait for run on a surplus
worker, not on top of a waiting task (where a task waiting for the one under it would never end); cancelling a
task that waits in a get settles it at once; the surplus workers leave once the CPUs are taken again."""

from __future__ import annotations

import asyncio
import time

import pytest

import nexus
from nexus.cluster import api
from nexus.exceptions import GetTimeoutError, TaskCancelledError


@nexus.remote(num_cpus=0)
class Signal:
    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def wait(self) -> None:
        await self.event.wait()

    async def send(self) -> None:
        self.event.set()


@nexus.remote
def wait_for(refs: list) -> object:
    return nexus.get(refs[0])  # (a ref inside a list: the task starts at once and waits in get)


def test_a_chain_waiting_on_one_cpu_is_cancelled_and_the_rest_goes_on(one_cpu: None) -> None:
    signal = Signal.remote()
    first = wait_for.remote([signal.wait.remote()])
    second = wait_for.remote([first])
    third = wait_for.remote([second])
    apart = wait_for.remote([signal.wait.remote()])
    assert not nexus.wait([third], timeout=0.2)[0]
    nexus.cancel(third)
    with pytest.raises(TaskCancelledError):
        nexus.get(third, timeout=30)
    nexus.cancel(first)
    for ref in (first, second):
        with pytest.raises(TaskCancelledError):
            nexus.get(ref, timeout=30)
    with pytest.raises(GetTimeoutError):
        nexus.get(apart, timeout=0.2)
    nexus.get(signal.send.remote(), timeout=30)
    assert nexus.get(apart, timeout=30) is None


def test_a_chain_that_waits_for_a_signal_ends_once_it_comes(one_cpu: None) -> None:
    signal = Signal.remote()
    chain = [wait_for.remote([signal.wait.remote()])]
    for _ in range(5):
        chain.append(wait_for.remote([chain[-1]]))
    time.sleep(0.3)  # (each waits in get: on one CPU, each on a worker of its own)
    nexus.get(signal.send.remote(), timeout=30)
    assert nexus.get(chain, timeout=60) == [None] * 6
    runtime = api._runtime()
    deadline = time.monotonic() + 30
    while len(runtime.workers) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(runtime.workers) == 1, "the surplus workers stayed after the CPUs were free again"


@nexus.remote
def reads(refs: list) -> int:
    import os

    nexus.get(refs)  # (made already: the answer comes at once)
    return os.getpid()


def test_a_task_that_gets_values_made_already_keeps_its_cpu(one_cpu: None) -> None:
    made = [nexus.put(bytes(1 << 20)) for _ in range(4)]
    assert len(set(nexus.get([reads.remote(made) for _ in range(300)], timeout=120))) == 1, (
        "a get that needs no wait does not lend the CPU: no surplus worker starts for the tasks queued behind it"
    )
    signal = Signal.remote()  # (and one that does wait lends it: the tasks behind run meanwhile)
    waiting = wait_for.remote([signal.wait.remote()])
    assert len(nexus.get([reads.remote(made) for _ in range(3)], timeout=60)) == 3
    nexus.get(signal.send.remote(), timeout=30)
    assert nexus.get(waiting, timeout=30) is None
