"""Once a second: each process's CPU and memory on this host, and the work waiting for it (``sample`` events)."""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..head.runtime import Runtime

__all__ = ["Sampler"]


class Sampler:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.thread = threading.Thread(target=self._loop, name="nexus-sampler", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _loop(self) -> None:
        rt = self.rt
        ticks = os.sysconf("SC_CLK_TCK")
        page = os.sysconf("SC_PAGE_SIZE")
        last: dict[int, tuple[float, int]] = {}
        while not rt.closing:
            time.sleep(rt.config.sample_every)
            with rt.lock:
                procs = [
                    (w.name, w.pid, len(w.actor.queue) + len(w.actor.inflight) if w.actor else w.inflight)
                    for w in rt.every_worker_record()
                    if w.alive and w.pid
                ]
                procs.append(("driver", os.getpid(), len(rt.tasks)))
            now = time.monotonic()
            for name, pid, queued in procs:
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    with open(f"/proc/{pid}/statm") as f:
                        rss = int(f.read().split()[1]) * page
                except (OSError, IndexError, ValueError):
                    continue
                cpu_ticks = int(fields[11]) + int(fields[12])
                before = last.get(pid)
                last[pid] = (now, cpu_ticks)
                cpu = 0.0 if before is None else 100.0 * (cpu_ticks - before[1]) / ticks / max(now - before[0], 1e-6)
                rt.emit("sample", name, pid, round(cpu, 1), rss, queued)
