"""Objects between hosts: each node agent serves its arena's regions; readers on other hosts pull them directly.

A value a worker of a joined node makes stays in that node's arena; the head
records where it is (a blob's ``at``: node, address, server key) and hands
readers elsewhere that record instead of the bytes. They ask the node's
:class:`ObjectServer` for the regions' parts and get each part as one
out-of-band frame, which the value is rebuilt on without a copy in Python
(:class:`Puller`). A request is a JSON frame, an answer raw bytes: nothing is
unpickled on either side of this link.

The server is a ROUTER bound to the address its host reaches the head from
(loopback for a head on loopback), a CURVE server with the node's key pair;
it lets in only keys the head told it (its allow-list, and the head's own).
It serves the node number it was told last: a node fenced and joined again
under a new number does not serve regions by its old number, which another
object may occupy by now.
"""

from __future__ import annotations

import contextlib
import itertools
import socket as _socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator

from ...core.errors import ObjectLostError
from ..protocol import LogLimiter
from . import wire
from .keys import KeyPair, quiet_auth_log

__all__ = ["ObjectServer", "Puller", "address_towards"]

_DOMAIN = "nexus-objects"
_MAX_PARTS = 4096  # parts one request may ask for (a value's buffers and its payload)
_REQUEST_BYTES = 256 << 10  # the largest request taken (ZMQ_MAXMSGSIZE): requests are small JSON frames
_ANSWERS: dict[str, dict[str, Any]] = {"ok": {"request": int, "piece": int}, "gone": {"request": int, "why": str}}
PIECE = 1 << 20
"""A part goes in frames of this size: CURVE seals each frame whole, and smaller ones keep both ends busy at once
(measured here: 0.8 GB/s in 1 MiB frames, 0.3 GB/s as one frame of 1 GiB)."""


def address_towards(host: str, port: int) -> str:
    """This host's address on the route to ``host`` (no packet is sent): where peers there can reach us."""
    family = _socket.AF_INET6 if ":" in host else _socket.AF_INET
    with _socket.socket(family, _socket.SOCK_DGRAM) as probe:
        probe.connect((host, port))
        return str(probe.getsockname()[0])


def _parts(value: Any, size: int) -> list[tuple[int, int]]:
    """The ``[[offset, nbytes], ...]`` of a request, each inside an arena of ``size`` bytes (else ValueError)."""
    if not isinstance(value, list) or not 0 < len(value) <= _MAX_PARTS:
        raise ValueError(f"a request for {len(value) if isinstance(value, list) else 'no'} parts (1 to {_MAX_PARTS})")
    parts = []
    for part in value:
        if not (isinstance(part, list) and len(part) == 2 and all(wire.is_int(n) and n >= 0 for n in part)):
            raise ValueError("a part that is not [offset, nbytes]")
        offset, nbytes = part
        if offset + nbytes > size:
            raise ValueError(f"a part [{offset}, {nbytes}] past the arena's end ({size})")
        parts.append((offset, nbytes))
    return parts


class ObjectServer:
    """A node agent's server of its arena's regions (a thread of its own): ``stop()`` ends it."""

    def __init__(self, view: memoryview, pair: KeyPair, bind_host: str) -> None:
        self.view = view
        self.node_id = 0  # the node number served (0: none yet, nothing is served)
        self.allowed: set[str] = set()  # the keys let in, as the head told them (with its own)
        self.served = self.refused = self.malformed = 0
        self.limited = LogLimiter()
        self.context = zmq.Context()
        self.auth = ThreadAuthenticator(self.context, log=quiet_auth_log("nexus.node.objects.auth"))
        self.auth.start()
        self.auth.configure_curve_callback(_DOMAIN, credentials_provider=self)
        sock = self.socket = self.context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, _REQUEST_BYTES)
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 1000)
        sock.curve_server = True
        sock.curve_publickey = pair.public.encode("ascii")
        sock.curve_secretkey = pair.secret.encode("ascii")
        sock.zap_domain = _DOMAIN.encode()
        host = f"[{bind_host}]" if ":" in bind_host else bind_host
        try:
            port = sock.bind_to_random_port(f"tcp://{host}")
        except zmq.ZMQError as exc:
            self.close()
            raise OSError(f"cannot serve objects on {bind_host}: {exc}") from None
        self.address = f"tcp://{host}:{port}"
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="nexus-object-server", daemon=True)
        self.thread.start()

    def callback(self, _domain: str, key: bytes) -> bool:
        allowed = key.decode("ascii", "replace") in self.allowed
        if not allowed:
            self.refused += 1
            self.limited(f"nexus node: refused an object request from a key not on the cluster's allow-list ({self.refused} so far)")
        return allowed

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        while not self.stopping.is_set():
            if not poller.poll(200):
                continue
            while True:
                try:
                    frames = self.socket.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                except zmq.ZMQError:
                    return
                try:
                    self._answer(frames)
                except zmq.ZMQError:
                    pass  # the reader is gone: nothing to tell
                except Exception as exc:  # nothing a reader sends ends the server
                    self.malformed += 1
                    self.limited(f"nexus node: dropped a malformed object request: {exc!r}")

    def _answer(self, frames: list[bytes]) -> None:
        if len(frames) != 2:
            raise ValueError(f"a request of {len(frames) - 1} frames (one is taken)")
        identity, frame = frames
        _op, f = wire.decode(frame, {"get": {"node": int, "request": int, "parts": list}})
        parts = _parts(f["parts"], len(self.view))
        if f["node"] != self.node_id or not self.node_id:
            why = f"this node is node {self.node_id:x} now; node {f['node']:x}'s objects are gone with it"
            self.socket.send_multipart([identity, wire.encode("gone", request=f["request"], why=why)], zmq.NOBLOCK)
            return
        view = self.view
        answer: list[Any] = [identity, wire.encode("ok", request=f["request"], piece=PIECE)]
        for offset, nbytes in parts:
            answer.extend(view[at : min(at + PIECE, offset + nbytes)] for at in range(offset, offset + max(nbytes, 1), PIECE))
        self.socket.send_multipart(answer, zmq.NOBLOCK, copy=False)  # (the arena's memory itself: no copy here)
        self.served += 1

    def close(self) -> None:
        self.stopping.set()
        thread = getattr(self, "thread", None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(2)
        with contextlib.suppress(Exception):
            self.auth.stop()
        self.socket.close(0)
        self.context.term()


class Puller:
    """A process's reader of other nodes' objects: sockets kept per server, one pull at a time on each."""

    def __init__(self, pair: KeyPair, answer_within: float = 10.0) -> None:
        self.pair = pair
        self.answer_within = answer_within  # plus a second per 50 MB: twice the head's node timeout, where it says
        self.context = zmq.Context()
        self.idle: dict[tuple[str, str], list[zmq.Socket[Any]]] = {}
        self.lock = threading.Lock()
        self.requests = itertools.count(1)
        self.closed = False

    def _socket(self, address: str, key: str) -> zmq.Socket[Any]:
        with self.lock:
            if self.closed:
                raise ObjectLostError("this process's cluster connection is closed")
            idle = self.idle.get((address, key))
            if idle:
                return idle.pop()
        sock = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, -1)  # (parts are arrays; the server is authenticated by its key)
        sock.curve_serverkey = key.encode("ascii")
        sock.curve_publickey = self.pair.public.encode("ascii")
        sock.curve_secretkey = self.pair.secret.encode("ascii")
        sock.connect(address)
        return sock

    def _give_back(self, address: str, key: str, sock: zmq.Socket[Any]) -> None:
        with self.lock:
            if not self.closed:
                self.idle.setdefault((address, key), []).append(sock)
                return
        sock.close(0)

    def pull(
        self, at: Sequence[Any], parts: list[tuple[int, int]], into: list[memoryview] | None = None, timeout: float | None = None
    ) -> list[memoryview]:
        """The bytes of ``parts`` (``(offset, nbytes)`` in the arena of node ``at``), read-only views.

        A part that came in one frame is a view of it; one in several is
        joined, once, into memory of its own, or into ``into`` (a writable
        view per part, such as regions of this host's arena). ObjectLostError,
        naming the node, if it does not answer in time (by default
        ``answer_within`` and a second per 50 MB: by then the head has
        declared a dead node so) or no longer has them.
        """
        node, address, key = at[0], at[1], at[2]
        total = sum(n for _, n in parts)
        wait = timeout if timeout is not None else self.answer_within + total / 50e6
        sock = self._socket(address, key)
        request = next(self.requests)
        try:
            sock.send(wire.encode("get", node=node, request=request, parts=[list(p) for p in parts]))
            deadline = time.monotonic() + wait
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not sock.poll(max(1, int(left * 1000))):
                    raise ObjectLostError(
                        f"node {node:x} (at {address}) did not send the object's bytes within {wait:.0f} s: "
                        "it may be dead or cut off; its objects are reported lost once the head declares it dead"
                    )
                frames = sock.recv_multipart(copy=False)
                op, f = wire.decode(frames[0].bytes, _ANSWERS)
                if f["request"] == request:
                    break  # (an answer to an earlier request, whose reader gave up, is dropped)
            if op == "gone":
                raise ObjectLostError(f"node {node:x} (at {address}) no longer has the object: {f['why']}")
            views = _joined(frames, parts, f["piece"], into)
            if views is None:
                raise ObjectLostError(f"node {node:x} (at {address}) answered with parts of the wrong sizes")
        except BaseException:
            sock.close(0)
            raise
        self._give_back(address, key, sock)
        return views

    def close(self) -> None:
        with self.lock:
            self.closed = True
            idle, self.idle = self.idle, {}
        for socks in idle.values():
            for sock in socks:
                sock.close(0)
        self.context.term()


def _joined(frames: list[Any], parts: list[tuple[int, int]], piece: int, into: list[memoryview] | None) -> list[memoryview] | None:
    """The parts of an answer from its frames (``piece`` bytes each, the last of a part shorter); None if they do not
    add up."""
    if piece < 1:
        return None
    counts = [max(1, -(-nbytes // piece)) for _, nbytes in parts]
    if sum(counts) != len(frames) - 1:
        return None
    views = []
    at = 1
    for i, (count, (_, nbytes)) in enumerate(zip(counts, parts, strict=True)):
        pieces = [frame.buffer for frame in frames[at : at + count]]
        at += count
        if sum(p.nbytes for p in pieces) != nbytes or any(p.nbytes != piece for p in pieces[:-1]):
            return None
        if into is None and count == 1:
            views.append(pieces[0].toreadonly())
            continue
        whole = into[i] if into is not None else memoryview(bytearray(nbytes))
        if whole.nbytes != nbytes:
            return None
        done = 0
        for p in pieces:
            whole[done : done + p.nbytes] = p
            done += p.nbytes
        views.append(whole.toreadonly())
    return views
