"""The pump: receives from many connections at once (spin briefly, then park on all of them)."""

from __future__ import annotations

import select
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..transport import Connection
from .codec import unpack, unpack_frames

__all__ = ["SPIN_SECONDS", "LogLimiter", "Pump"]

SPIN_SECONDS = 200e-6
"""How long a receiver polls its rings before it parks: longer than a typical call, far shorter than a wake-up."""


class LogLimiter:
    """At most ``burst`` lines per ``period`` seconds, then one line saying how many were left out.

    For what a peer can cause at any rate (malformed messages): the log
    says what happened without growing by a line per bad message.
    """

    def __init__(self, burst: int = 5, period: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.period = period
        self.clock = clock
        self.window = -period
        self.lines = 0
        self.suppressed = 0

    def __call__(self, line: str, file: Any = None) -> None:
        now = self.clock()
        if now - self.window >= self.period:
            if self.suppressed:
                print(f"nexus: ... {self.suppressed} more like these in the last {self.period:g} s were not shown", file=file or sys.stderr)
            self.window, self.lines, self.suppressed = now, 0, 0
        if self.lines < self.burst:
            self.lines += 1
            print(line, file=file or sys.stderr, flush=True)
        else:
            self.suppressed += 1


class Pump:
    """Receives from a set of connections: spin briefly, then park on all of them (and on extra fds)."""

    def __init__(self, handle: Callable[[Any, tuple[Any, ...]], None], on_bad: Callable[[Any, Exception], None]) -> None:
        self.handle = handle
        self.on_bad = on_bad
        self.rejected = 0

    def drain(self, connections: Sequence[Any]) -> int:
        """Handle every message waiting now; returns how many."""
        n = 0
        for key, conn in connections:
            while True:
                try:
                    message = conn.try_recv()
                except Exception as exc:
                    self.on_bad(key, exc)
                    break
                if message is None:
                    break
                n += 1
                try:
                    body = unpack(message[0]) if not message[1] else unpack_frames([message[0], *message[1]])
                except Exception as exc:
                    self.rejected += 1
                    self.on_bad(key, exc)
                    continue
                self.handle(key, body)
        return n

    def once(self, connections: Sequence[Any], extra_fds: Sequence[int], timeout: float, spin: float = SPIN_SECONDS) -> list[int]:
        """Spin up to ``spin`` seconds for messages; if none came, park up to ``timeout``. Returns ready extra fds."""
        deadline = time.perf_counter() + spin
        while True:
            if self.drain(connections):
                return []
            if time.perf_counter() >= deadline:
                break
        parked: list[Connection] = []
        try:
            for _, conn in connections:
                if not conn.park_begin():
                    break
                parked.append(conn)
            else:
                poller = select.poll()  # not select(): descriptors above 1023 are common with many actors
                for _, conn in connections:
                    poller.register(conn.fileno(), select.POLLIN)
                for fd in extra_fds:
                    poller.register(fd, select.POLLIN)
                try:
                    events = poller.poll(None if timeout is None else timeout * 1000)
                except OSError:
                    events = []
                extra = set(extra_fds)
                return [fd for fd, _ in events if fd in extra]
        finally:
            for conn in parked:
                conn.park_end()
        return []
