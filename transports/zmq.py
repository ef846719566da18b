"""The ZeroMQ transport: a PAIR socket per channel, over ipc (default) or tcp on loopback, authenticated with CURVE.

The driver binds, the child connects. Each channel has a CURVE key pair of
its own: the child's socket is the CURVE *server* holding the channel's
secret key (handed to it through an inherited pipe, never a command line),
the driver's socket a CURVE client that knows the channel's public key. A
peer that cannot prove it holds the secret key never completes the
handshake, so the driver neither sends it anything nor receives anything
from it -- nothing from a stranger is ever unpickled -- and the channel
stays free for the real worker to connect (a PAIR socket takes one peer).
Every message is encrypted too. ipc sockets also live in a private (0700)
folder named after the cluster (``nexus-<cluster>-zmq-<random>``), which the
janitor removes if the cluster dies without cleaning up. Frames travel as
further ZeroMQ message parts, without copying.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Sequence
from typing import Any

import zmq

from nexus.cluster.shm_util import private_dir
from nexus.cluster.transport import ChannelSpec, Connection, Message, Transport, TransportClosedError

__all__ = ["ZmqTransport"]

SCHEMES = ("ipc", "tcp")


class ZmqConnection(Connection):
    def __init__(self, context: zmq.Context, socket: zmq.Socket, own_context: bool) -> None:
        self._context = context
        self._socket = socket
        self._lock = threading.Lock()
        self._own_context = own_context
        self._closed = False
        self._fd = socket.getsockopt(zmq.FD)
        self.sent = 0
        self.received = 0

    def try_send(self, data: bytes, frames: Sequence[Any] = ()) -> bool:
        with self._lock:
            if self._closed:
                raise TransportClosedError("the channel is closed")
            try:
                if frames:
                    self._socket.send_multipart([data, *frames], zmq.NOBLOCK, copy=False)
                else:
                    self._socket.send(data, zmq.NOBLOCK, copy=len(data) < 65536)
            except zmq.Again:
                return False
            self.sent += 1
            return True

    def send(self, data: bytes, frames: Sequence[Any] = ()) -> None:
        delay = 1e-5
        while True:
            if self.try_send(data, frames):  # the lock is never held while waiting: the receiving side goes on
                return
            alive = self.peer_alive
            if alive is not None and delay >= 1e-3 and not alive():
                raise TransportClosedError("the peer is gone and its queue is full")
            time.sleep(delay)  # the peer's queue is full (or it has not connected yet): back-pressure
            delay = min(delay * 2, 1e-3)

    def try_recv(self) -> Message | None:
        with self._lock:
            if self._closed:
                return None
            try:
                parts = self._socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return None
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
    """PAIR sockets with CURVE; ``scheme`` is ``"ipc"`` (default) or ``"tcp"`` (bound to 127.0.0.1 on a free port).

    ``nexus.init(transport="zmq+tcp")`` (or ``"zmq+ipc"``) picks the scheme.
    """

    name = "zmq"

    def __init__(self, scheme: str = "ipc") -> None:
        if scheme not in SCHEMES:
            raise ValueError(f"the zmq transport's scheme is 'ipc' or 'tcp' (transport='zmq+tcp'), not {scheme!r}")
        if not zmq.has("curve"):
            raise RuntimeError("this libzmq has no CURVE security, which the zmq transport needs; reinstall pyzmq from its wheels")
        self.scheme = scheme
        self._context = zmq.Context()
        self._public, self._secret = zmq.curve_keypair()  # the driver's side of every channel
        self._folder = private_dir("zmq") if scheme == "ipc" else None

    @classmethod
    def configured(cls, option: str) -> ZmqTransport:
        return cls(option)

    def open_channel(self, label: str) -> tuple[Connection, ChannelSpec]:
        channel_public, channel_secret = zmq.curve_keypair()
        socket = self._context.socket(zmq.PAIR)
        socket.setsockopt(zmq.LINGER, 0)
        socket.curve_secretkey = self._secret
        socket.curve_publickey = self._public
        socket.curve_serverkey = channel_public  # only the holder of channel_secret completes the handshake
        if self.scheme == "ipc":
            assert self._folder is not None
            address = f"ipc://{self._folder}/{label}.sock"
            socket.bind(address)
        else:
            port = socket.bind_to_random_port("tcp://127.0.0.1")
            address = f"tcp://127.0.0.1:{port}"
        return ZmqConnection(self._context, socket, own_context=False), ChannelSpec(self.name, f"{address}#{channel_secret.decode()}")

    @classmethod
    def attach(cls, spec: ChannelSpec) -> Connection:
        address, mark, secret = spec.address[:-41], spec.address[-41:-40], spec.address[-40:]  # Z85 may hold '#'
        if not address or mark != "#":
            raise ValueError("a zmq channel spec is <address>#<the channel's CURVE secret key: 40 characters of Z85>")
        context = zmq.Context()
        socket = context.socket(zmq.PAIR)
        socket.setsockopt(zmq.LINGER, 0)
        socket.curve_server = True
        socket.curve_secretkey = secret.encode()
        socket.connect(address)
        return ZmqConnection(context, socket, own_context=True)

    def close(self) -> None:
        self._context.destroy(linger=0)  # closes any channel left open (term() alone would wait for it)
        if self._folder:
            shutil.rmtree(self._folder, ignore_errors=True)
