"""The one thread that uses a peer's socket to the head: it sends what callers queue, receives, and beats.

A ZeroMQ socket is one thread's. Callers queue frames and wake this thread
(an eventfd); it hands data frames (``[b"D", ...]``) and control frames to
its owner's callbacks, sends a beat every ``heartbeat``, and tells its owner
once when the head has not answered for ``timeout`` (or fenced it).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

from .parts import DATA, LAYOUT, PART, Parts, split

__all__ = ["LinkThread", "LiveClock"]


class LiveClock:
    """The clock a listening thread measures a peer's silence by: monotonic time, except that a stall of the
    thread itself (the GIL held long elsewhere in its process, the process stopped) counts as no more than
    ``most`` seconds. Silence is what the peer did not say while this thread could have heard it."""

    __slots__ = ("_at", "most", "now")

    def __init__(self, most: float) -> None:
        self.most = most
        self.now = 0.0
        self._at = time.monotonic()

    def tick(self) -> float:
        """Advance to now; the new reading."""
        at = time.monotonic()
        self.now += min(at - self._at, self.most)
        self._at = at
        return self.now


class LinkThread:
    def __init__(
        self,
        socket: zmq.Socket,
        heartbeat: float,
        timeout: float,
        beat: bytes,
        on_data: Callable[[list[Any]], None],
        on_control: Callable[[bytes], None],
        on_lost: Callable[[str], None],
        before_send: Callable[[], None] | None = None,
        name: str = "nexus-link",
    ) -> None:
        self.socket = socket
        self.heartbeat = heartbeat
        self.timeout = timeout
        self.beat = beat
        self.on_data = on_data
        self.on_control = on_control
        self.on_lost = on_lost
        self.before_send = before_send
        self.outgoing: deque[list[Any]] = deque()
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.closed = False
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def send(self, frames: list[Any]) -> None:
        """Queue ``frames`` (one message) to be sent in order; any thread."""
        self.outgoing.append(frames)
        self.wake()

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            if not self.closed:
                os.eventfd_write(self.wake_fd, 1)

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:
            if not self.closed:
                self.on_lost(f"the link to the head failed ({exc!r})")

    def _loop(self) -> None:
        sock = self.socket
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self.wake_fd, zmq.POLLIN)
        last_beat = time.monotonic()
        clock = LiveClock(2 * self.heartbeat)
        last_heard = clock.now
        lost = False
        parts = Parts()
        while not self.closed:
            events = dict(poller.poll(int(self.heartbeat * 500)))
            heard_at = clock.tick()
            if self.wake_fd in events:
                with contextlib.suppress(BlockingIOError):
                    os.eventfd_read(self.wake_fd)
            if self.before_send is not None:
                self.before_send()
            outgoing = self.outgoing
            while outgoing:
                with contextlib.suppress(zmq.ZMQError):
                    for message in split(outgoing.popleft()):  # (a large one in parts: see remote.parts)
                        sock.send_multipart(message, copy=False)
            if sock in events:
                for _ in range(1000):
                    try:
                        frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    last_heard = heard_at
                    try:
                        kind = frames[0].bytes if len(frames) >= 2 else b""
                        if kind == LAYOUT:
                            parts.first(frames[1:])
                        elif kind == PART:
                            parts.add(frames[1:])
                        elif kind == DATA:
                            self.on_data([frames[0], *parts.join(frames[1:])])
                        elif len(frames) == 1:
                            self.on_control(frames[0].bytes)
                    except Exception as exc:  # this thread must go on (calls waiting on it would wait for ever)
                        print(f"nexus: dropped a message from the head that could not be handled: {exc!r}", file=sys.stderr, flush=True)
            now = time.monotonic()
            if now - last_beat >= self.heartbeat:
                with contextlib.suppress(zmq.ZMQError):
                    sock.send(self.beat, zmq.NOBLOCK)
                last_beat = now
            silent = clock.tick() - last_heard
            if not lost and silent > self.timeout:
                lost = True
                self.on_lost(f"the head has not answered for {silent:.1f} s")

    def close(self) -> None:
        """Stop the thread (what is queued by now is sent first)."""
        if self.closed:
            return
        with contextlib.suppress(OSError):
            os.eventfd_write(self.wake_fd, 1)
        deadline = time.monotonic() + 1.0
        while self.outgoing and time.monotonic() < deadline:
            time.sleep(0.005)
        self.closed = True
        self.thread.join(2)
        os.close(self.wake_fd)
