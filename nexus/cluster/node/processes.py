"""Worker processes of this host: started with their channel's secrets on a pipe, watched by pidfd, reaped."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..protocol.codec import pack
from ..state.workers import WorkerRecord
from ..transport import Transport, transport_target

__all__ = ["WorkerProcess", "spawn_worker"]


class WorkerProcess:
    """The node's handle on one worker process: its channel, its process, its output, what waits to be sent to it."""

    def __init__(self, record: WorkerRecord, conn: Any, proc: subprocess.Popen[bytes]) -> None:
        self.record = record
        self.name = record.name
        self.conn = conn
        self.proc = proc
        self.pid = proc.pid
        self.pidfd = os.pidfd_open(proc.pid)
        self.ready = threading.Event()  # it said hello
        self.out_buffers: dict[int, bytes] = {}
        # Messages for it not sent yet, in order (bodies, or packed bytes once a send found no room); sent by
        # whoever releases the head's lock, never while holding it (see node.outbox).
        self.unsent: deque[Any] = deque()
        self.send_lock = threading.Lock()  # one thread at a time sends what is unsent, in order
        self.push_queued = False  # a push of what is unsent is queued to run when the head's lock is released
        self.pack = pack  # how a message for it is encoded (one host: one buffer, its blobs' bytes in the arena)
        self.tee: Callable[[str, int, bool, list[str]], None] | None = None  # also given its output lines (see head.peers)
        record.link = self
        record.pid = proc.pid

    def __repr__(self) -> str:
        return f"WorkerProcess({self.name}, pid={self.pid})"

    @property
    def alive(self) -> bool:
        return self.record.alive

    @property
    def kind(self) -> str:
        return self.record.kind

    def kill(self) -> None:
        """SIGKILL it; the receiver sees its pidfd and settles what it had (retries, restarts)."""
        with contextlib.suppress(ProcessLookupError, OSError):
            self.proc.kill()

    def close_pidfd(self) -> None:
        if self.pidfd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.pidfd)
            self.pidfd = -1

    def streams(self) -> tuple[Any, Any]:
        return self.proc.stdout, self.proc.stderr

    def forward_output(self, stream: Any) -> bool:
        """Print what it wrote on ``stream``, a line at a time with its name; False when nothing more is there."""
        if stream.closed:
            return False
        fd = stream.fileno()
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return False
        except OSError:
            chunk = b""
        if not chunk:
            stream.close()
            return False
        data = self.out_buffers.get(fd, b"") + chunk
        *lines, rest = data.split(b"\n")
        self.out_buffers[fd] = rest
        target = sys.stderr if stream is self.proc.stderr else sys.stdout
        text = [line.decode(errors="replace") for line in lines]
        for line in text:
            print(f"({self.name} pid={self.pid}) {line}", file=target, flush=True)
        if self.tee is not None and text:
            with contextlib.suppress(Exception):
                self.tee(self.name, self.pid, target is sys.stderr, text)
        return True

    def reap(self, timeout: float = 5.0) -> None:
        """Collect it once dead: its exit status and the last of its output."""
        with contextlib.suppress(Exception):
            self.proc.wait(timeout)
        for stream in self.streams():
            if stream is not None and not stream.closed:
                with contextlib.suppress(Exception):
                    while self.forward_output(stream):
                        pass
                stream.close()

    def finish(self) -> None:
        """At shutdown, once it exited: print what it wrote last, close everything of it."""
        for stream in self.streams():
            if stream is not None:
                with contextlib.suppress(Exception):
                    rest = stream.read()
                    if rest:
                        target = sys.stderr if stream is self.proc.stderr else sys.stdout
                        for line in rest.decode(errors="replace").splitlines():
                            print(f"({self.name} pid={self.pid}) {line}", file=target)
                stream.close()
        with contextlib.suppress(Exception):
            self.conn.close()
        self.close_pidfd()


def spawn_worker(
    record: WorkerRecord, transport: Transport, env: dict[str, str], death_r: int, give_up_at: list[float], config: str
) -> WorkerProcess:
    """Start the process of ``record`` with a new channel and ``config`` (JSON); ``give_up_at[0]``: when sends to a
    full channel stop waiting."""
    conn, spec = transport.open_channel(record.name)
    env = dict(os.environ, PYTHONUNBUFFERED="1", NEXUS_TRANSPORT_CLASS=transport_target(type(transport)), **env)
    # What the worker needs to attach, secrets included (a ZeroMQ channel's key), goes through a pipe it
    # inherits: a command line is readable by every local user (/proc/PID/cmdline), a pipe is not.
    bootstrap_r, bootstrap_w = os.pipe()
    try:
        os.write(bootstrap_w, f"{spec.encode()}\n{config}".encode())  # (a pipe holds 64 KiB: both fit at once)
    finally:
        os.close(bootstrap_w)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nexus.cluster.worker", str(record.index), record.kind, str(bootstrap_r), str(death_r)],
            pass_fds=(*spec.pass_fds, death_r, bootstrap_r),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            # Not in the driver's process group: signals sent to the group (a notebook server stopping or
            # restarting its kernel signals the kernel's whole group, and ipykernel terminates its children)
            # must not kill workers one by one for the pool to replace; they leave when the driver says so,
            # or when it is gone (the death pipe).
            start_new_session=True,
        )
    except BaseException:
        conn.close()
        raise
    finally:
        os.close(bootstrap_r)
    # A blocking send to a full channel gives up when the worker is gone, and at shutdown once its timeout is
    # over (a worker that stopped reading must not hang shutdown).
    conn.peer_alive = lambda: proc.poll() is None and time.monotonic() < give_up_at[0]
    for stream in (proc.stdout, proc.stderr):
        assert stream is not None
        os.set_blocking(stream.fileno(), False)
    return WorkerProcess(record, conn, proc)
