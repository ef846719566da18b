"""The thread that receives on a peer's socket to the head and beats; callers send on it themselves.

A ZeroMQ socket must be used by one thread at a time: whoever sends or
receives holds the link's lock (a leaf: nothing else is taken while it is
held). A caller sends its message at once, from its own thread, behind what
is queued (a hand-off to this thread would cost a wake-up and a turn of the
GIL, tens of microseconds each, on every call). This thread parks on the
socket's descriptor, which is edge-triggered: after a send, the sender looks
whether messages wait and wakes it if so. It hands data frames (``[b"D",
...]``) and control frames to its owner's callbacks, outside the lock, sends
a beat every ``heartbeat``, and tells its owner once when the head has not
answered for ``timeout`` (or fenced it).
"""

from __future__ import annotations

import contextlib
import os
import select
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
        self.outgoing: deque[list[Any]] = deque()  # queued by whoever may not send now (this thread sends them first)
        self.lock = threading.Lock()  # the socket's (see above)
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.closed = False
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def send(self, frames: list[Any]) -> None:
        """Send ``frames`` (one message) now, from the calling thread, after what is queued; any thread (dropped once closed)."""
        with self.lock:
            if self.closed:
                return
            self._send_queued()
            self._put(frames)
            waiting = _waiting(self.socket)
        if waiting:
            self.wake()  # (the send took the descriptor's edge: the receiving thread would not see them)

    def _send_queued(self) -> None:
        outgoing = self.outgoing
        while outgoing:
            self._put(outgoing.popleft())

    def _put(self, frames: list[Any]) -> None:
        with contextlib.suppress(zmq.ZMQError):
            for message in split(frames):  # (a large one in parts: see remote.parts)
                self.socket.send_multipart(message, copy=False)

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
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)  # (edge-triggered: see send)
        poller.register(self.wake_fd, select.POLLIN)
        last_beat = time.monotonic()
        clock = LiveClock(2 * self.heartbeat)
        last_heard = clock.now
        lost = False
        parts = Parts()
        while not self.closed:
            with self.lock:
                waiting = not self.closed and _waiting(sock)
            if not waiting:
                poller.poll(int(self.heartbeat * 500))
            heard_at = clock.tick()
            with contextlib.suppress(BlockingIOError):
                os.eventfd_read(self.wake_fd)
            if self.before_send is not None:
                self.before_send()
            received = []
            with self.lock:
                if self.closed:
                    break
                self._send_queued()
                for _ in range(1000):
                    try:
                        received.append(sock.recv_multipart(zmq.NOBLOCK, copy=False))
                    except zmq.Again:
                        break
                now = time.monotonic()
                if now - last_beat >= self.heartbeat:
                    with contextlib.suppress(zmq.ZMQError):
                        sock.send(self.beat, zmq.NOBLOCK)
                    last_beat = now
            if received:
                last_heard = heard_at
            for frames in received:
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
        with self.lock:
            self.closed = True  # (nobody touches the socket after this: its owner may close it)
        self.thread.join(2)
        os.close(self.wake_fd)


def _waiting(sock: zmq.Socket[Any]) -> bool:
    """Whether messages wait on ``sock`` (reading its events also re-arms its edge-triggered descriptor)."""
    return bool(int(sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN)  # type: ignore[arg-type]
