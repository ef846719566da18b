"""The head's end of the control link: nodes join, beat, leave and are declared dead here.

One ROUTER socket, a CURVE server: ZeroMQ's ZAP handler (pyzmq's
``ThreadAuthenticator``) lets a peer through only if its public key is on
the allow-list (``allowed/`` in the head's folder), so no frame of a peer
with a wrong or missing key ever reaches this code; refusals are counted.
Frames that do arrive are JSON (:mod:`.wire`), checked, and dropped (and
counted) when malformed: a bad frame never stops the head.
"""

from __future__ import annotations

import contextlib
import os
import socket as _socket
import sys
import threading
import time
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator

from ..protocol import LogLimiter
from ..state.nodes import Membership, NodeRecord
from . import wire
from .keys import HeadKeys

__all__ = ["HeadService"]

_NODE_OPS: dict[str, dict[str, Any]] = {
    "join": {"host": str, "pid": int, "resources": dict, "labels": dict, "wall": (int, float)},
    "beat": {"node_id": int},
    "leave": {"node_id": int},
    "nodes": {},
}


class HeadService:
    """Membership over the control link; ``serve()`` runs it until ``stop`` is set."""

    def __init__(
        self,
        keys: HeadKeys,
        bind: str = "127.0.0.1",
        port: int = 0,
        heartbeat: float = 0.5,
        timeout: float = 5.0,
        resources: dict[str, float] | None = None,
        labels: dict[str, str] | None = None,
        log: Any = None,
    ) -> None:
        self.keys = keys
        self.heartbeat = heartbeat
        self.membership = Membership(timeout)
        self.refused = 0  # peers whose key is not on the allow-list (counted by the ZAP handler's thread)
        self.malformed = 0  # frames from authenticated peers that did not parse
        self.print = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.limited = LogLimiter()
        self.context = zmq.Context()
        self.auth = ThreadAuthenticator(self.context, log=_quiet_logger())
        self.auth.start()
        self.auth.configure_curve_callback("nexus", credentials_provider=self)
        sock = self.socket = self.context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, wire.MAX_FRAME)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
        sock.curve_server = True
        sock.curve_secretkey = keys.head.secret.encode("ascii")
        sock.curve_publickey = keys.head.public.encode("ascii")
        sock.zap_domain = b"nexus"
        try:
            if port == 0:
                self.port = sock.bind_to_random_port(f"tcp://{bind}")
            else:
                sock.bind(f"tcp://{bind}:{port}")
                self.port = port
        except zmq.ZMQError as exc:
            self.close()
            raise OSError(f"cannot listen on {bind}:{port}: {exc}") from None
        self.bind = bind
        # The head's own host is a node of the cluster too (its key is the head's)
        now = time.monotonic()
        self.own = self.membership.join(
            keys.head.public, _socket.gethostname(), dict(resources or {}), dict(labels or {}), now, info={"pid": os.getpid(), "head": True}
        )

    # -- the ZAP handler's question (its thread) ---------------------------------------------

    def callback(self, _domain: str, key: bytes) -> bool:
        allowed = key.decode("ascii", "replace") in self.keys.allowed()
        if not allowed:
            self.refused += 1
            self.limited(f"nexus head: refused a peer whose key is not on the allow-list ({self.refused} so far)")
        return allowed

    # -- the loop -----------------------------------------------------------------------------

    def serve(self, stop: threading.Event) -> None:
        sock = self.socket
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        while not stop.is_set():
            events = dict(poller.poll(int(self.heartbeat * 500)))
            if sock in events:
                for _ in range(1000):  # what waits now, without starving the expiry below
                    try:
                        frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self._handle(frames)
            now = time.monotonic()
            self.membership.heard(self.own.node_id, self.own.key, now)
            for record in self.membership.expire(now):
                self.print(f"nexus head: node {record.node_id} ({record.host}) is dead: {record.why}")

    def _handle(self, frames: list[Any]) -> None:
        if len(frames) != 2:
            self.malformed += 1
            self.limited(f"nexus head: dropped a message of {len(frames) - 1} frames (one is taken)")
            return
        identity, frame = frames
        key = frame.get("User-Id")  # the authenticated public key (Z85), set by the ZAP handler
        try:
            op, fields = wire.decode(frame.bytes, _NODE_OPS)
            reply = getattr(self, f"_on_{op}")(key, fields)
        except ValueError as exc:
            self.malformed += 1
            self.limited(f"nexus head: dropped a malformed control frame: {exc}")
            return
        if reply is not None:
            with contextlib.suppress(zmq.ZMQError):  # a peer gone meanwhile: nothing to tell
                self.socket.send_multipart([identity.bytes, reply], zmq.NOBLOCK)

    def _on_join(self, key: str, f: dict[str, Any]) -> bytes:
        resources = f["resources"]
        labels = f["labels"]
        if not all(isinstance(k, str) for k in resources) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            raise ValueError("a join whose resources or labels are not names to amounts and strings")
        now = time.monotonic()
        info = {"pid": f["pid"]}
        record = self.membership.join(key, f["host"][:253], resources, labels, now, time.time() - f["wall"], info)
        self.print(f"nexus head: node {record.node_id} ({record.host}, pid {f['pid']}) joined with {_amounts(record.resources)}")
        return wire.encode(
            "welcome",
            node_id=record.node_id,
            heartbeat=self.heartbeat,
            timeout=self.membership.timeout,
            wall=time.time(),
            cluster=self.keys.cluster,
        )

    def _on_beat(self, key: str, f: dict[str, Any]) -> bytes:
        record = self.membership.heard(f["node_id"], key, time.monotonic())
        if record is None:
            known = self.membership.get(f["node_id"])
            why = known.why if known is not None and known.key == key else "it is not a node of this cluster"
            return wire.encode("fenced", node_id=f["node_id"], why=why)
        offset = f.get("offset")
        if isinstance(offset, (int, float)) and not isinstance(offset, bool):
            record.clock_offset = float(offset)
        return wire.encode("ack")

    def _on_leave(self, key: str, f: dict[str, Any]) -> None:
        record = self.membership.leave(f["node_id"], key)
        if record is not None:
            self.print(f"nexus head: node {record.node_id} ({record.host}) left")

    def _on_nodes(self, _key: str, _f: dict[str, Any]) -> bytes:
        return wire.encode("nodes", nodes=[_describe(r) for r in self.membership], refused=self.refused, malformed=self.malformed)

    def close(self) -> None:
        self.auth.stop()
        self.socket.close(0)
        self.context.term()


def _describe(r: NodeRecord) -> dict[str, Any]:
    return {
        "node_id": r.node_id,
        "host": r.host,
        "alive": r.alive,
        "resources": r.resources,
        "labels": r.labels,
        "clock_offset": r.clock_offset,
        "why": r.why,
        "head": bool(r.info.get("head")),
        "pid": r.info.get("pid"),
    }


def _amounts(resources: dict[str, float]) -> str:
    return ", ".join(f"{v:g} {k}" for k, v in sorted(resources.items())) or "no resources"


def _quiet_logger() -> Any:
    import logging

    logger = logging.getLogger("nexus.head.auth")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger
