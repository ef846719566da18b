"""What a node's workers print, read by their agent and sent to the head a beat at a time (as Ray's log monitor).

The agent starts its workers with pipes for stdout and stderr and reads
them on a thread of its own (:class:`OutputRelay`), a line at a time, so
what a worker wrote last before it crashed (its traceback) is not lost with
it. The lines are kept in the agent's own log too, and wait for the thread
that beats, which alone uses the agent's socket to the head: it sends them
as ``output`` control frames (JSON, at most ``CHUNK`` characters of text
each). The head prints them in its log, named by worker and host, and sends
them to every attached driver.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import sys
import threading
from collections import deque
from typing import Any

__all__ = ["CHUNK", "OutputRelay", "batches"]

CHUNK = 60_000  # characters of output in one control frame (frames are at most wire.MAX_FRAME bytes)
KEPT = 10_000  # lines kept for the head at most; past that the oldest are dropped (and counted)


class OutputRelay:
    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.lines: deque[tuple[int, bool, str]] = deque(maxlen=KEPT)  # (pid, from stderr, line) for the head
        self.dropped = 0
        self.partial: dict[int, bytes] = {}  # by descriptor: a line not ended yet
        self.new: deque[tuple[Any, int, bool]] = deque()  # streams to watch, handed to the reading thread
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.selector.register(self.wake_r, selectors.EVENT_READ, None)
        self.closed = False
        self.thread = threading.Thread(target=self._run, name="nexus-node-output", daemon=True)
        self.thread.start()

    def watch(self, proc: Any) -> None:
        """Read ``proc``'s stdout and stderr (pipes) from now on (any thread)."""
        for stream, err in ((proc.stdout, False), (proc.stderr, True)):
            if stream is not None:
                self.new.append((stream, proc.pid, err))
        with contextlib.suppress(OSError):
            os.write(self.wake_w, b"x")

    def take(self) -> list[tuple[int, bool, str]]:
        """The lines read since the last take, oldest first (the thread that beats)."""
        out = []
        with contextlib.suppress(IndexError):
            while True:
                out.append(self.lines.popleft())
        return out

    def _run(self) -> None:
        while not self.closed:
            for key, _ in self.selector.select(0.5):
                if key.data is None:
                    with contextlib.suppress(OSError):
                        os.read(self.wake_r, 4096)
                    continue
                try:
                    self._read(key)
                except Exception as exc:  # (this thread must go on: workers block once their pipes are full)
                    print(f"nexus node: could not read a worker's output: {exc!r}", file=sys.stderr, flush=True)
                    with contextlib.suppress(Exception):
                        self.selector.unregister(key.fileobj)
            while self.new:
                stream, pid, err = self.new.popleft()
                os.set_blocking(stream.fileno(), False)
                self.selector.register(stream, selectors.EVENT_READ, (pid, err))

    def _read(self, key: Any) -> None:
        stream = key.fileobj
        pid, err = key.data
        fd = stream.fileno()
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        data = self.partial.pop(fd, b"") + chunk
        *whole, rest = data.split(b"\n")
        if not chunk:  # the worker is gone: its last words, ended or not
            whole, rest = [*whole, rest] if rest else whole, b""
            self.selector.unregister(stream)
            stream.close()
        elif rest:
            self.partial[fd] = rest
        for raw in whole:
            line = raw.decode(errors="replace")
            print(f"(pid {pid}) {line}", file=sys.stderr if err else sys.stdout, flush=True)  # (the agent's log)
            if len(self.lines) == KEPT:
                self.dropped += 1  # (the oldest goes: the deque is bounded)
            self.lines.append((pid, err, line))

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            os.write(self.wake_w, b"x")
        self.thread.join(2)
        for key in list(self.selector.get_map().values()):
            if key.data is not None:
                with contextlib.suppress(Exception):
                    key.fileobj.close()  # type: ignore[union-attr]  # (the workers' pipes, as registered)
        self.selector.close()
        os.close(self.wake_r)
        os.close(self.wake_w)


def batches(lines: list[tuple[int, bool, str]]) -> list[tuple[int, bool, str]]:
    """Consecutive lines of one worker's stream joined, in chunks of at most ``CHUNK`` characters."""
    out: list[tuple[int, bool, str]] = []
    for pid, err, whole in lines:
        line = whole[:CHUNK]
        if out and out[-1][0] == pid and out[-1][1] == err and len(out[-1][2]) + len(line) < CHUNK:
            out[-1] = (pid, err, f"{out[-1][2]}\n{line}")
        else:
            out.append((pid, err, line))
    return out
