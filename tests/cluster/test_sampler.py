"""Sampling processes: what /proc says of a process, and the samples a node's agent sends with its beats, taken
by the head only where they name one of that node's workers and have the right shape."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

from nexus.cluster.node.sampler import NodeSamples, ProcessMeter
from nexus.cluster.state.workers import WorkerRecord


def test_a_meter_reads_cpu_and_memory_and_forgets_processes_that_are_gone() -> None:
    meter = ProcessMeter()
    first = meter.measure(os.getpid())
    assert first is not None and first[0] == 0.0 and first[1] > 1 << 20, "no CPU figure before a second reading"
    spent = time.process_time()
    while time.process_time() - spent < 0.05:  # (past a few clock ticks, on any machine)
        pass
    second = meter.measure(os.getpid())
    assert second is not None and second[0] > 0.0
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert meter.measure(child.pid) is None and child.pid not in meter.last
    meter.forget_others(set())
    assert meter.last == {}


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def emit(self, kind: str, *values: Any) -> None:
        self.events.append((kind, *values))


def test_a_nodes_samples_are_recorded_for_its_workers_and_garbage_is_passed_over() -> None:
    worker, other = WorkerRecord(7, "task"), WorkerRecord(8, "actor")
    worker.pid, worker.inflight, other.pid = 4242, 2, 4343
    rt = _Recorder()
    samples = NodeSamples(rt)  # type: ignore[arg-type]
    garbage: list[Any] = [
        [9999, 1.0, 10],  # no worker of this node
        [4242, True, 10],
        [4242, 1.0],
        "4242,1,1",
        [4242, 1.0, 10.5],
        [None, 1.0, 10],
        [[4242], 1.0, 10],
        [4242, float("inf"), 10],  # (what 1e999 in JSON decodes to)
        [4242, -5.0, 10],
        [4242, 1.0, -1],
        [4242, 12.5, 1000],
    ]
    assert samples.take(1, lambda: [worker, other], garbage, now=10.0) == 0, "one list reads two entries a worker at most"
    assert samples.take(1, lambda: [worker, other], [[4242, 12.5, 1000], [4242, 13.0, 1001], [4343, 0, 5]], now=11.0) == 2
    assert rt.events == [("sample", "worker-7", 4242, 13.0, 1001, 2), ("sample", "worker-8", 4343, 0.0, 5, 0)], "one a worker"
    assert samples.take(1, lambda: [worker, other], [[4242, 1.0, 1]], now=11.2) == 0, "a node's lists come half a second apart"
    assert samples.take(2, lambda: [worker], [[4242, 1.0, 1]] * 5000, now=11.2) == 1, "each node on its own"
