"""Answers and ref changes on their way from a worker to the driver: held back, to go several in one message."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from typing import Any, Protocol

from ..config import ClusterConfig
from ..protocol import pack
from ..transport import Connection
from ..values import Blob

__all__ = ["HeldAnswers"]


class _Owner(Protocol):
    """What the held answers read of the runtime that owns them: what runs next, and whether it is leaving."""

    tasks: deque[tuple[Any, ...]]
    backlog: deque[tuple[Any, ...]]
    exiting: bool


class HeldAnswers:
    """What a worker has answered or counted and not sent yet, in order; one per worker, owned by its runtime.

    Every message the runtime sends goes after these (``flush_held`` first,
    with ``held_lock`` held): nothing overtakes an answer or a ref change.
    """

    def __init__(self, conn: Connection, runtime: _Owner, config: ClusterConfig) -> None:
        self.conn = conn
        self.encode = getattr(conn, "encode", pack)  # (see WorkerRuntime.encode)
        self.hold_under, self.hold_max, self.hold_age = config.hold_under, config.hold_max, config.hold_age
        self.runtime = runtime
        # Ref and pin changes (oid, dref, dpin), in the order they happened; they go to the driver before
        # anything else this process sends (a ref received in a value is counted before the value is let go).
        self.ref_ops: deque[tuple[int, int, int]] = deque()
        self.held: list[tuple[str, Any]] = []  # answers ("d") and ref changes ("r") waiting to go, in order
        self.held_answers = 0
        self.held_since = 0.0
        self.held_lock = threading.Lock()
        self.held_cond = threading.Condition(self.held_lock)
        self.watchdog: threading.Thread | None = None
        self.durations: dict[Any, float] = {}  # how long each function or method took last time

    def ref_op(self, oid: int, dref: int, dpin: int) -> None:
        """Count a ref or pin change (from any thread, finalizers included: a deque append needs no lock)."""
        self.ref_ops.append((oid, dref, dpin))

    def _absorb_ref_ops(self) -> None:
        """Move the ref changes made so far into the held sequence, after the answers held before them."""
        pop = self.ref_ops.popleft
        held = self.held
        try:
            while True:
                held.append(("r", pop()))
        except IndexError:
            pass

    def answer(self, call_id: int, items: list[tuple[int, Blob]], key: Any, took: float, timing: Any = None) -> None:
        """Send the results of a call or task, or hold them to go with the next answers in one message.

        Held only when this call was quick and the next one waiting here is
        expected to be quick too (its function or method was last time); held
        answers go out with the next answer that is not held, and in any case
        within about ``hold_age`` (ClusterConfig) (a watchdog thread sends them when the call
        now running turns out slow). Ref changes keep their place among held
        answers: a ref released after an answer holding it was made goes after it.
        """
        self.durations[key] = took
        with self.held_lock:
            self._absorb_ref_ops()
            self.held.append(("d", (call_id, items, timing)))
            self.held_answers += 1
            if took < self.hold_under and self.held_answers < self.hold_max and self._next_is_quick():
                now = time.perf_counter()
                if self.held_answers == 1:
                    self.held_since = now
                    self._start_watchdog()
                    self.held_cond.notify()
                    return
                if now - self.held_since < self.hold_age:
                    return
            self.flush_held()

    def _next_is_quick(self) -> bool:
        runtime = self.runtime
        try:  # the monitor thread may take tasks away meanwhile (a revoke)
            if runtime.tasks:
                key = runtime.tasks[0][2]
            elif runtime.backlog and runtime.backlog[0][0] == "call":
                key = runtime.backlog[0][3]
            else:
                return False
        except IndexError:
            return False
        took = self.durations.get(key)
        return took is not None and took < self.hold_under

    def flush_held(self) -> None:
        """Send held answers and ref changes in their order (with ``held_lock`` held, so that nothing overtakes them)."""
        self._absorb_ref_ops()
        entries, self.held = self.held, []
        self.held_answers = 0
        run: list[Any] = []
        kind = ""
        for entry_kind, entry in entries:
            if entry_kind != kind and run:
                self._send_run(kind, run)
                run = []
            kind = entry_kind
            run.append(entry)
        if run:
            self._send_run(kind, run)

    def _send_run(self, kind: str, run: list[Any]) -> None:
        if kind == "r":
            self.conn.send(self.encode(("refs", run)))
        elif len(run) == 1:
            self.conn.send(self.encode(("done", *run[0])))
        else:
            self.conn.send(self.encode(("done_many", run)))

    def _start_watchdog(self) -> None:
        if self.watchdog is None:
            self.watchdog = threading.Thread(target=self._watch_held, name="nexus-answers", daemon=True)
            self.watchdog.start()

    def _watch_held(self) -> None:
        with self.held_lock:
            while not self.runtime.exiting:
                if not self.held:
                    self.held_cond.wait()
                    continue
                late = self.held_since + self.hold_age - time.perf_counter()
                if late > 0:
                    self.held_cond.wait(late)
                    continue
                with contextlib.suppress(Exception):
                    self.flush_held()
