"""Once a second: each process's CPU and memory on this host, and the work waiting for it (``sample`` events).

:class:`ProcessMeter` reads them from ``/proc``; the head's :class:`Sampler` measures its own host's workers,
and a node's agent measures its own and sends them with its beats (the head takes them with
:class:`NodeSamples`).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..head.runtime import Runtime
    from ..state.workers import WorkerRecord

__all__ = ["NodeSamples", "ProcessMeter", "Sampler"]


class ProcessMeter:
    """CPU use (percent of one core, since the last reading of the same process) and resident memory of processes
    of this host."""

    def __init__(self) -> None:
        self.ticks = os.sysconf("SC_CLK_TCK")
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.last: dict[int, tuple[float, int]] = {}  # by pid: when it was read, and its CPU ticks then

    def measure(self, pid: int) -> tuple[float, int] | None:
        """``(cpu percent, resident bytes)`` of ``pid``; None if it is gone (its first reading says 0% CPU)."""
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/statm") as f:
                rss = int(f.read().split()[1]) * self.page
            cpu_ticks = int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            self.last.pop(pid, None)
            return None
        now = time.monotonic()
        before = self.last.get(pid)
        self.last[pid] = (now, cpu_ticks)
        cpu = 0.0 if before is None else 100.0 * (cpu_ticks - before[1]) / self.ticks / max(now - before[0], 1e-6)
        return round(cpu, 1), rss

    def forget_others(self, pids: set[int]) -> None:
        """Let go of the readings of processes not in ``pids`` (they exited)."""
        for pid in [p for p in self.last if p not in pids]:
            del self.last[pid]


class Sampler:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.thread = threading.Thread(target=self._loop, name="nexus-sampler", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _loop(self) -> None:
        rt = self.rt
        meter = ProcessMeter()
        while not rt.closing:
            time.sleep(rt.config.sample_every)
            with rt.lock:
                procs = [
                    (w.name, w.pid, len(w.actor.queue) + len(w.actor.inflight) if w.actor else w.inflight)
                    for w in rt.every_worker_record()
                    if w.alive and w.pid
                ]
                procs.append(("driver", os.getpid(), len(rt.tasks)))
            meter.forget_others({pid for _name, pid, _queued in procs})
            for name, pid, queued in procs:
                measured = meter.measure(pid)
                if measured is not None:
                    rt.emit("sample", name, pid, measured[0], measured[1], queued)


class NodeSamples:
    """What the nodes' agents send of their workers with their beats (``[pid, cpu percent, resident bytes]``
    each), recorded as ``sample`` events of those workers, as the head's own host's are. A node's list is
    untrusted: an entry that names none of that node's workers, or holds no finite, plausible figures, is
    passed over; one entry a worker, and one list a node every half second at most (its beats come every
    half second: more would be a node flooding the events)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.last: dict[int, float] = {}  # node -> when its samples were last taken

    def take(self, node: int, workers: Callable[[], list[WorkerRecord]], procs: list[Any], now: float) -> int:
        """Record ``procs`` of ``node`` (whose workers ``workers()`` lists, asked only when they are taken) at ``now``;
        how many were taken."""
        if now - self.last.get(node, -1.0) < 0.45:
            return 0
        self.last[node] = now
        by_pid = {w.pid: w for w in workers()}
        taken: dict[int, tuple[float, int]] = {}
        for entry in procs[: 2 * len(by_pid)]:
            if not (isinstance(entry, list) and len(entry) == 3 and all(_number(x) for x in entry)):
                continue
            pid, cpu, rss = entry
            if isinstance(pid, int) and pid in by_pid and isinstance(rss, int) and 0 <= rss < 1 << 62 and 0.0 <= cpu <= 1e6:
                taken[pid] = (float(cpu), rss)
        for pid, (cpu, rss) in taken.items():
            worker = by_pid[pid]
            actor = worker.actor
            queued = len(actor.queue) + len(actor.inflight) if actor is not None else worker.inflight
            self.rt.emit("sample", worker.name, pid, cpu, rss, queued)
        return len(taken)


def _number(value: Any) -> bool:
    """A finite number (JSON's true and false are not; 1e999 decodes to infinity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
