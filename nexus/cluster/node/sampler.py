"""Once a second: each process's CPU and memory on this host, and the work waiting for it (``sample`` events).

:class:`ProcessMeter` reads them from ``/proc``; the head's :class:`Sampler` measures its own host's workers,
and a node's agent measures its own and sends them with its beats (the head then records them as well).
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..head.runtime import Runtime
    from ..state.workers import WorkerRecord

__all__ = ["ProcessMeter", "Sampler", "record_samples"]


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


def record_samples(rt: Runtime, workers: list[WorkerRecord], procs: list[Any]) -> None:
    """A node's samples of its ``workers`` (``[pid, cpu, rss]`` each, as its agent sent them with a beat), recorded
    as ``sample`` events of theirs, as the head's own host's are; an entry that names none of them is passed over."""
    by_pid = {w.pid: w for w in workers}
    for entry in procs[:1000]:
        if not (isinstance(entry, list) and len(entry) == 3 and all(_number(x) for x in entry)):
            continue
        worker = by_pid.get(entry[0])
        if worker is not None and isinstance(entry[0], int) and isinstance(entry[2], int):
            actor = worker.actor
            queued = len(actor.queue) + len(actor.inflight) if actor is not None else worker.inflight
            rt.emit("sample", worker.name, entry[0], float(entry[1]), entry[2], queued)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)  # (JSON's true and false are not)
