"""The ZeroMQ transport: a PAIR socket per channel, over ipc (default) or tcp on loopback.

The driver binds, the child connects. Before anything else the child sends
the channel's secret token; the driver drops the channel when the first
message is anything else, so a stranger that reaches the socket first cannot
feed the driver pickles. ipc sockets live in a private (0700) temporary folder.
Frames travel as further ZeroMQ message parts, without copying.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

import zmq

from nexus.cluster.transport import ChannelSpec, Connection, Message, Transport, TransportClosedError

__all__ = ["ZmqTransport"]


class ZmqConnection(Connection):
    def __init__(self, context: zmq.Context, socket: zmq.Socket, token: bytes | None, own_context: bool) -> None:
        self._context = context
        self._socket = socket
        self._lock = threading.Lock()
        self._token = token  # the driver expects this as the first message; None once checked
        self._own_context = own_context
        self._closed = False
        self._fd = socket.getsockopt(zmq.FD)
        self.sent = 0
        self.received = 0

    def send(self, data: bytes, frames: Sequence[Any] = ()) -> None:
        parts = [data, *frames]
        delay = 1e-5
        while True:
            with self._lock:  # never held while waiting: the receiving side must go on meanwhile
                if self._closed:
                    raise TransportClosedError("the channel is closed")
                try:
                    if frames:
                        self._socket.send_multipart(parts, zmq.NOBLOCK, copy=False)
                    else:
                        self._socket.send(data, zmq.NOBLOCK, copy=len(data) < 65536)
                    self.sent += 1
                    return
                except zmq.Again:
                    pass
            alive = self.peer_alive
            if alive is not None and delay >= 1e-3 and not alive():
                raise TransportClosedError("the peer is gone and its queue is full")
            time.sleep(delay)  # the peer's queue is full (or it has not connected yet): back-pressure
            delay = min(delay * 2, 1e-3)

    def try_recv(self) -> Message | None:
        with self._lock:
            if self._closed:
                return None
            while True:
                try:
                    parts = self._socket.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    return None
                if self._token is not None:
                    if len(parts) != 1 or not secrets.compare_digest(bytes(parts[0]), self._token):
                        raise TransportClosedError("the peer did not present the channel's token")
                    self._token = None
                    continue
                self.received += 1
                return parts[0], parts[1:]

    def fileno(self) -> int:
        return self._fd

    def park_begin(self) -> bool:
        with self._lock:
            if self._closed:
                return True
            return not (self._socket.getsockopt(zmq.EVENTS) & zmq.POLLIN)

    @property
    def stats(self) -> dict[str, int]:
        return {"sent": self.sent, "received": self.received}

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._socket.close(linger=0)
            if self._own_context:
                self._context.term()


class ZmqTransport(Transport):
    """PAIR sockets; ``scheme`` is ``"ipc"`` (default) or ``"tcp"`` (bound to 127.0.0.1 on a free port)."""

    name = "zmq"

    def __init__(self, scheme: str = "ipc") -> None:
        if scheme not in ("ipc", "tcp"):
            raise ValueError(f"scheme must be 'ipc' or 'tcp', not {scheme!r}")
        self.scheme = scheme
        self._context = zmq.Context()
        self._folder = tempfile.mkdtemp(prefix="nexus-zmq-") if scheme == "ipc" else None
        if self._folder:
            os.chmod(self._folder, 0o700)

    def open_channel(self, label: str) -> tuple[Connection, ChannelSpec]:
        socket = self._context.socket(zmq.PAIR)
        socket.setsockopt(zmq.LINGER, 0)
        if self.scheme == "ipc":
            assert self._folder is not None
            address = f"ipc://{self._folder}/{label}.sock"
            socket.bind(address)
        else:
            port = socket.bind_to_random_port("tcp://127.0.0.1")
            address = f"tcp://127.0.0.1:{port}"
        token = secrets.token_bytes(16)
        return ZmqConnection(self._context, socket, token, own_context=False), ChannelSpec(self.name, f"{address}#{token.hex()}")

    @classmethod
    def attach(cls, spec: ChannelSpec) -> Connection:
        address, _, token = spec.address.rpartition("#")
        context = zmq.Context()
        socket = context.socket(zmq.PAIR)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(address)
        socket.send(bytes.fromhex(token))
        return ZmqConnection(context, socket, None, own_context=True)

    def close(self) -> None:
        self._context.term()
        if self._folder:
            shutil.rmtree(self._folder, ignore_errors=True)
