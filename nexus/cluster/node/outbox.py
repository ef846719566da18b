"""Sending to workers: coalescing calls into batches, and never waiting for a channel under the head's lock.

What the head sends goes into the worker's ``unsent`` queue under its lock;
the thread that releases the lock sends it (``try_send``: never waits for
room). A channel with no room keeps its messages, in order, and the receiver
tries again every millisecond until the worker reads or dies: a worker that
stopped reading holds up nothing but what is sent to it (a thread submitting
to it waits, outside the lock, once ``max_unsent_messages`` pile up).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...core.errors import SystemShutdownError
from ..config import ClusterConfig
from ..protocol import LogLimiter
from ..state.commands import Push
from ..state.workers import WorkerRecord
from .processes import WorkerProcess

if TYPE_CHECKING:
    from ..head.lock import TableLock

__all__ = ["Outbox"]


class Outbox:
    def __init__(self, lock: TableLock, config: ClusterConfig, wake: Callable[[], None], log: LogLimiter) -> None:
        self.lock = lock
        self.config = config
        self.wake = wake  # wakes the receiver, which retries channels that had no room
        self.log = log
        self.backed_up: set[WorkerProcess] = set()

    def send(self, w: WorkerRecord, body: tuple[Any, ...]) -> None:
        """Send ``body`` to ``w`` in order with what was sent to it before (after the lock is released)."""
        link: WorkerProcess = w.link
        link.unsent.append(body)
        lock = self.lock
        if not lock.held():
            self.push(link)
        elif not link.push_queued:  # one push per worker per locked section: it sends all that is queued by then
            link.push_queued = True
            lock.commands.append(Push(link))

    def post(self, w: WorkerRecord, body: tuple[Any, ...], unanswered: int, after: int) -> None:
        """Send a call or task, or hold it in the worker's outbox while ``unanswered`` earlier ones keep it busy.

        Only for work that runs strictly after the unanswered work (a
        sequential actor's calls, tasks prefetched behind a running one): an
        answer to any of those flushes the outbox, so nothing held can be
        what an earlier call waits for. Coalescing saves a message, an
        envelope and a pickle per call when calls are submitted in a burst.
        Called with the lock held.
        """
        if w.outbox or unanswered >= after:
            w.outbox.append(body)
            if len(w.outbox) >= self.config.coalesce_max:
                self.flush(w)
        else:
            self.send(w, body)

    def flush(self, w: WorkerRecord) -> None:
        if w.outbox:
            batch, w.outbox = w.outbox, []
            self.send(w, batch[0] if len(batch) == 1 else ("batch", batch))

    def push(self, link: WorkerProcess) -> None:
        """Send what waits for ``link``, in order, as far as its channel has room (never waits)."""
        link.push_queued = False  # what is queued from here on is sent by this push, or asks for another
        unsent = link.unsent
        while unsent:
            if not link.send_lock.acquire(blocking=False):
                return  # another thread is sending them; it looks again once it let go
            try:
                while unsent:
                    try:
                        item = unsent[0]
                    except IndexError:  # dropped meanwhile (its worker died, or shutdown)
                        break
                    data = item if type(item) is bytes else link.pack(item)
                    try:
                        sent = link.conn.try_send(data)
                    except Exception as exc:
                        sent = True  # dropped: it can never be sent
                        if link.alive and link.proc.poll() is None:
                            self.log(f"nexus: cannot send to {link.name}: {exc}")
                        # else it died: the receiver sees its pidfd and settles what was sent to it (retries, errors)
                    if not sent:
                        if unsent and unsent[0] is item:
                            unsent[0] = data  # packed once
                        if link not in self.backed_up:
                            self.backed_up.add(link)
                            self.wake()
                        return
                    with contextlib.suppress(IndexError):
                        unsent.popleft()
                # All sent: no longer backed up. Under the send lock, so that a thread that queues more and finds
                # no room meanwhile adds it back after this, not before (the loop above looks again once let go).
                self.backed_up.discard(link)
            finally:
                link.send_lock.release()

    def retry(self) -> None:
        """Try again the channels that had no room (the receiver does, every round while there are any)."""
        for link in list(self.backed_up):
            if not link.alive:
                link.unsent.clear()
                self.backed_up.discard(link)
            else:
                self.push(link)

    def wait_for_room(self, w: WorkerRecord, closing: Callable[[], bool], assist: Callable[[], None]) -> None:
        """Back-pressure for a thread submitting to ``w``: wait while too much waits for its channel.

        Raises SystemShutdownError if the cluster shuts down meanwhile (what was not sent never will be).
        """
        link: WorkerProcess | None = w.link
        if link is None or len(link.unsent) < self.config.max_unsent_messages:
            return
        while len(link.unsent) >= self.config.max_unsent_messages // 2 and link.alive:
            if closing():
                raise SystemShutdownError(f"the cluster shut down while this call waited for {link.name} to read its channel")
            assist()
            time.sleep(0.001)
