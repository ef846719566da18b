"""Receiving from every worker of this host: one thread, or the thread of a caller waiting for its own result.

The receiver spins on the channels briefly after each message, then parks
on all of them at once, on the pidfd of every worker (so a crash is noticed
at once) and on their output pipes (so what a worker prints shows up in the
driver, prefixed with the worker). Receiving is a role: the receiver thread
holds it unless a caller of ``get`` takes it to receive its own result
without a thread hand-off (a wake-up plus the GIL cost ~20-50 us here).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from ..protocol import Pump

if TYPE_CHECKING:
    from ..head.runtime import Runtime
    from .processes import WorkerProcess

__all__ = ["Receiver"]


class Receiver:
    def __init__(self, rt: Runtime, pump: Pump) -> None:
        self.rt = rt
        self.pump = pump
        self.config = rt.config
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.role = threading.Lock()
        self.role_cond = threading.Condition()
        self.want_role = 0
        self.activity = 0.0
        self.assisted = 0.0
        self.parked = False
        self.generation = 0  # changes whenever the set of channels and descriptors to poll does
        self._poll_generation = -1
        self._poll_cache: Any = ([], {}, [])
        self.thread = threading.Thread(target=self._loop, name="nexus-driver-receiver", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def changed(self) -> None:
        """The set of workers or their descriptors changed: poll the new set from the next round."""
        self.generation += 1

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            os.eventfd_write(self.wake_fd, 1)

    def _loop(self) -> None:
        """Receive whenever no application thread is busy with the cluster.

        A thread that calls ``get`` receives its own result (see
        :meth:`ObjectDirectory.wait_object`), and one that submits drains the
        channels between submissions (:meth:`assist`); for ``role_grace``
        after either, this thread stays out of the way: two threads taking
        turns at receiving would hand the GIL back and forth on every message.
        """
        rt = self.rt
        grace = self.config.role_grace
        while not rt.closed:
            with self.role_cond:
                while (self.want_role or time.monotonic() - self.activity < grace) and not rt.closed:
                    self.role_cond.wait(grace if not self.want_role else None)
            with self.role:
                self.parked = True
                try:
                    self.receive_once(0.25, spin=0.0)
                finally:
                    self.parked = False

    def assist(self) -> None:
        """Called after a submission: receive what is waiting, if nobody else is receiving right now."""
        now = self.activity = time.monotonic()
        if self.parked:
            self.parked = False
            self.wake()
        if now - self.assisted < self.config.assist_every:
            return  # in a burst of submissions, receive every few of them: answers wait in the rings meanwhile
        self.assisted = now
        if self.role.acquire(blocking=False):
            try:
                self.pump.drain(self._poll_set()[0])
            finally:
                self.role.release()

    def _poll_set(self) -> tuple[list[tuple[Any, Any]], dict[int, tuple[str, Any]]]:
        if self._poll_generation != self.generation:
            generation = self.generation
            links = self.rt.links()
            conns = [(w.record, w.conn) for w in links if w.alive and not w.record.broken]
            extra: dict[int, tuple[str, Any]] = {self.wake_fd: ("wake", None)}
            for w in links:
                if w.alive and w.pidfd >= 0:
                    extra[w.pidfd] = ("exit", w)
                for stream in w.streams():
                    if stream is not None and not stream.closed:
                        extra[stream.fileno()] = ("out", (w, stream))
            self._poll_cache = (conns, extra, list(extra))
            self._poll_generation = generation
        conns, extra, _ = self._poll_cache
        return conns, extra

    def receive_once(self, timeout: float, spin: float | None = None) -> None:
        """One round of receiving: spin on the channels, else park on them and on the extra descriptors."""
        rt = self.rt
        if rt.objects.deferred:
            with rt.lock:
                rt.objects.drain_deferred()
        conns, extra = self._poll_set()
        scheduler = rt.scheduler
        if scheduler.steal_watch:
            timeout = min(timeout, self.config.steal_after / 2)
        outbox = rt.outbox
        if outbox.backed_up:
            outbox.retry()
            if outbox.backed_up:
                timeout = min(timeout, 0.001)
        ready = self.pump.once(conns, self._poll_cache[2], timeout=timeout, spin=self.config.spin if spin is None else spin)
        if scheduler.steal_watch:
            with rt.lock:
                scheduler.steal()
        for fd in ready:
            what, w = extra[fd]
            if what == "wake":
                with contextlib.suppress(OSError):
                    os.eventfd_read(self.wake_fd)
            elif what == "out":
                link, stream = w
                link.forward_output(stream)
                if stream.closed:
                    self.changed()
            elif what == "exit" and w is not None:
                self._exited(w)

    def _exited(self, w: WorkerProcess) -> None:
        if not w.record.broken:
            self.pump.drain([(w.record, w.conn)])  # what it sent before it died
        self.rt.worker_exited(w)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.wake_fd)
