"""Sampling processes: what /proc says of a process, and the samples a node's agent sends with its beats, taken
by the head only where they name one of that node's workers and have the right shape."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from nexus.cluster.node.sampler import ProcessMeter, record_samples
from nexus.cluster.state.workers import WorkerRecord


def test_a_meter_reads_cpu_and_memory_and_forgets_processes_that_are_gone() -> None:
    meter = ProcessMeter()
    first = meter.measure(os.getpid())
    assert first is not None and first[0] == 0.0 and first[1] > 1 << 20, "no CPU figure before a second reading"
    sum(i * i for i in range(300_000))
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
    worker = WorkerRecord(7, "task")
    worker.pid, worker.inflight = 4242, 2
    rt = _Recorder()
    garbage: list[Any] = [
        [4242, 12.5, 1000],
        [9999, 1.0, 10],  # no worker of this node
        [4242, True, 10],
        [4242, 1.0],
        "4242,1,1",
        [4242, 1.0, 10.5],
        [None, 1.0, 10],
        [[4242], 1.0, 10],
    ]
    record_samples(rt, [worker], garbage)  # type: ignore[arg-type]
    assert rt.events == [("sample", "worker-7", 4242, 12.5, 1000, 2)]
    record_samples(rt, [worker], [[4242, 1.0, 1]] * 5000)  # type: ignore[arg-type]
    assert len(rt.events) == 1 + 1000, "at most 1,000 a beat"
