"""The head's end of the control link: nodes join, beat, leave and are declared dead here.

One ROUTER socket, a CURVE server: ZeroMQ's ZAP handler (pyzmq's
``ThreadAuthenticator``) lets a peer through only if its public key is on
the allow-list (``allowed/`` in the head's folder), so no frame of a peer
with a wrong or missing key ever reaches this code; refusals are counted.
Frames that do arrive are JSON (:mod:`.wire`), checked, and dropped (and
counted) when malformed: a bad frame never stops the head. A large data
message (and the same peer's messages behind it) is handled on a data
thread, so that unpickling it and copying it into the arena never keeps the
loop from answering beats; silence is measured on a :class:`~.link.LiveClock`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import secrets
import socket as _socket
import sys
import threading
import time
from collections import deque
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator

from ..node.sampler import NodeSamples
from ..protocol import LogLimiter, unpack_frames
from ..state.nodes import Membership
from ..state.resources import amounts_text
from . import wire
from .drain import Drains
from .keys import HeadKeys, quiet_auth_log
from .link import LiveClock
from .members import NodeWatch
from .parts import DATA, LAYOUT, PART, Parts, split

__all__ = ["HeadService"]

_ACK = wire.encode("ack")
SLOW_BYTES = 1 << 20
"""A data message this large is handled on the head's data thread, not the loop's: unpickling it and copying its
buffers into the arena takes long (a second a GiB on fresh pages), and the loop must go on answering beats."""
_NODE_OPS: dict[str, dict[str, Any]] = {
    "join": {"host": str, "pid": int, "resources": dict, "labels": dict, "wall": (int, float)},
    "beat": {"node_id": int},
    "leave": {"node_id": int},
    "nodes": {},
    "drain": {"node_id": int, "deadline": (int, float)},
    "attach": {"host": str, "pid": int},
    "peer_beat": {"worker_id": int},
    "detach": {"worker_id": int},
    "exited": {"node_id": int, "pid": int, "code": int},
    "output": {"node_id": int, "pid": int, "err": bool, "text": str},
}


class _Peer:
    """A driver attached over this link: its record in the head's tables, its routing id and key."""

    __slots__ = ("handled", "identity", "key", "last_heard", "parts", "queued", "record")

    def __init__(self, identity: bytes, key: str, record: Any, now: float) -> None:
        self.identity = identity
        self.key = key
        self.record = record
        self.last_heard = now
        self.parts = Parts()  # of a large message on its way (see remote.parts)
        # Its messages given to the data thread (counted by the loop thread) and handled there (by that thread):
        # while they differ, its later messages go there too, in order behind them
        self.queued = 0
        self.handled = 0


class _PeerConnection:
    """What the head's outbox sends to an attached driver through: frames queued for the link's thread to send."""

    def __init__(self, service: HeadService, identity: bytes) -> None:
        self.service = service
        self.identity = identity

    def try_send(self, data: Any, frames: Any = ()) -> bool:
        service = self.service
        if not service.closed:
            service.outgoing.append((self.identity, data))  # (frames: see PeerLink.pack)
            service.wake()
        return True

    send = try_send


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
        runtime: Any = None,
        membership: str = "memory",
        phi_threshold: float = 8.0,
    ) -> None:
        self.keys = keys
        self.runtime = runtime  # the head's cluster, which attached drivers use (None: membership only)
        self.samples = NodeSamples(runtime) if runtime is not None else None  # (what nodes' beats say of their workers)
        self.peers: dict[bytes, _Peer] = {}  # by routing id
        self.outgoing: deque[tuple[bytes, list[Any]]] = deque()
        self.kills: deque[tuple[Any, ...]] = deque()  # (peer, why[, code]) to drop, asked from other threads (the loop drops them)
        self.control_out: deque[tuple[bytes, bytes]] = deque()  # control frames other threads send to nodes
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.closed = False
        self.epoch = secrets.token_hex(8)  # this head's run: a beat for a node of an earlier run is fenced
        self.node_identity: dict[int, bytes] = {}  # the connection each node joined on: only it speaks for it
        self.slow: queue.SimpleQueue[tuple[_Peer, Any] | None] = queue.SimpleQueue()  # for the data thread: frames, or a departure
        self.data_thread: threading.Thread | None = None
        if runtime is not None:
            from ..head.peers import peer_loads

            self.loads = peer_loads(runtime)
            self.data_thread = threading.Thread(target=self._data_loop, name="nexus-head-data", daemon=True)
        self.heartbeat = heartbeat
        self.membership = Membership(timeout)
        self.clock = LiveClock(2 * heartbeat)  # what peers' silence is measured by (the loop thread's)
        self.print = log or (lambda line: print(line, file=sys.stderr, flush=True))
        # the nodes as members of a backend, and suspected by phi (the table above decides their death)
        self.watch = NodeWatch(membership, timeout, heartbeat, phi_threshold, lambda: self.clock.now, self.print)
        self.watched = 0.0  # when the loop last had phi judge the nodes
        self.drains = Drains(self)
        self.later: deque[Any] = deque()  # what other threads ask the loop thread to do (callables)
        self.refused = 0  # peers whose key is not on the allow-list (counted by the ZAP handler's thread)
        self.malformed = 0  # frames from authenticated peers that did not parse
        self.limited = LogLimiter()
        self.context = zmq.Context()
        self.auth = ThreadAuthenticator(self.context, log=quiet_auth_log("nexus.head.auth"))
        self.auth.start()
        self.auth.configure_curve_callback("nexus", credentials_provider=self)
        sock = self.socket = self.context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, -1)  # data frames carry arrays; only authenticated peers get to send any
        sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
        sock.setsockopt(zmq.SNDHWM, 0)  # a ROUTER drops what passes its high-water mark: no mark for cluster traffic
        sock.setsockopt(zmq.RCVHWM, 0)
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
        now = self.clock.now
        self.own = self.membership.join(
            keys.head.public,
            _socket.gethostname(),
            dict(resources or {}),
            dict(labels or {}),
            now,
            info={"pid": os.getpid(), "head": True},
            node_id=runtime.node_id if runtime is not None else 0,
        )
        self.watch.joined(self.own)
        if runtime is not None:
            from .objects import Puller

            runtime.membership = self.membership
            runtime.spawn_on = self.request_worker
            setattr(runtime, "control_drain", self.drains.start)  # noqa: B010  (what an attached driver asks by name)
            runtime.store.puller = Puller(keys.head, 2 * timeout)  # (this host's reads of objects on joined nodes)

    # -- the ZAP handler's question (its thread) ---------------------------------------------

    def callback(self, _domain: str, key: bytes) -> bool:
        try:
            allowed = key.decode("ascii", "replace") in self.keys.allowed()
        except Exception as exc:  # an exception here would end the authenticator's thread: refuse instead
            self.limited(f"nexus head: cannot read the allow-list ({exc}); refusing")
            allowed = False
        if not allowed:
            self.refused += 1
            self.limited(f"nexus head: refused a peer whose key is not on the allow-list ({self.refused} so far)")
        return allowed

    # -- the loop -----------------------------------------------------------------------------

    def serve(self, stop: threading.Event) -> None:
        sock = self.socket
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self.wake_fd, zmq.POLLIN)
        if self.data_thread is not None and self.data_thread.ident is None:
            self.data_thread.start()
        while not stop.is_set():
            events = dict(poller.poll(int(self.heartbeat * 500)))
            self.clock.tick()
            if self.wake_fd in events:
                with contextlib.suppress(BlockingIOError):
                    os.eventfd_read(self.wake_fd)
            while self.kills:
                self._guarded(self._peer_gone, *self.kills.popleft())
            while self.later:
                self._guarded(self.later.popleft())
            self._send_outgoing()
            if sock in events:
                for _ in range(1000):  # what waits now, without starving the expiry below
                    try:
                        frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    try:
                        self._handle(frames)
                    except Exception as exc:  # a defect here must not end membership for everyone: said, and on
                        self.malformed += 1
                        self.limited(f"nexus head: a message could not be handled: {exc!r}")
            now = self.clock.tick()  # (again: handling what came may have taken a while)
            self.membership.heard(self.own.node_id, self.own.key, now)
            if now - self.watched >= self.heartbeat / 5:
                self.watched = now
                self.watch.heard(self.own)
                self.watch.tick(list(self.membership))
            for record in self.membership.expire(now):
                self.watch.gone(record)
                self.print(f"nexus head: node {record.node_id} ({record.host}) is dead: {record.why}")
                self._guarded(self._drop_workers_of, record.node_id, f"its node is dead: {record.why}")
            for peer in [p for p in self.peers.values() if now - p.last_heard > self.membership.timeout]:
                self._guarded(self._peer_gone, peer, f"not heard from for {now - peer.last_heard:.1f} s")

    def _guarded(self, step: Any, *args: Any) -> None:
        """A step of the loop that settles a peer or node: a defect in it is said, and the loop goes on."""
        try:
            step(*args)
        except Exception as exc:
            self.limited(f"nexus head: settling a peer or node failed: {exc!r}")

    def wake(self) -> None:
        """Wake the loop thread (any thread may)."""
        with contextlib.suppress(OSError):
            if not self.closed:
                os.eventfd_write(self.wake_fd, 1)

    def request_worker(self, node: int, kind: str) -> bool:
        """Ask node ``node``'s agent to start a worker of ``kind`` (any thread); False if the node is not joined."""
        record = self.membership.get(node)
        if record is None or record.draining:
            return False
        return self.tell_node(node, "spawn", kind=kind)

    def tell_node(self, node: int, op: str, **fields: Any) -> bool:
        """Send node ``node``'s agent ``op`` (any thread); False if the node is not joined."""
        identity = self.node_identity.get(node)
        record = self.membership.get(node)
        if identity is None or record is None or not record.alive:
            return False
        self.control_out.append((identity, wire.encode(op, **fields)))
        self.wake()
        return True

    def let_go(self, node: int, why: str) -> None:
        """Node ``node`` is gone as if it had left (any thread: the loop thread does it)."""

        def go() -> None:
            record = self.membership.get(node)
            if record is not None:
                self._leaves(node, record.key, why, f"is let go: {why}", why)

        self.later.append(go)
        self.wake()

    def _leaves(self, node: int, key: str, why: str, said: str, workers_why: str) -> None:
        """Node ``node`` (joined with ``key``) is gone now, not at a timeout: its members' record, its workers."""
        record = self.membership.leave(node, key, why)
        if record is not None:
            self.watch.gone(record)
            self.print(f"nexus head: node {node} ({record.host}) {said}")
            self._drop_workers_of(node, workers_why)

    def _send_outgoing(self) -> None:
        while self.control_out:
            identity, frame = self.control_out.popleft()
            with contextlib.suppress(zmq.ZMQError):
                self.socket.send_multipart([identity, frame], zmq.NOBLOCK)
        outgoing = self.outgoing
        while outgoing:
            identity, frames = outgoing.popleft()
            with contextlib.suppress(zmq.ZMQError):
                for message in split([DATA, *frames]):  # (a large one in parts: see remote.parts)
                    self.socket.send_multipart([identity, *message], zmq.NOBLOCK, copy=False)

    def _handle(self, frames: list[Any]) -> None:
        kind = frames[1].bytes if len(frames) >= 3 else b""
        if kind in (DATA, PART, LAYOUT):
            self._on_data(frames[0].bytes, frames[2].get("User-Id"), kind, frames[2:])
            return
        if len(frames) != 2:
            self.malformed += 1
            self.limited(f"nexus head: dropped a message of {len(frames) - 1} frames (one is taken)")
            return
        identity, frame = frames
        key = frame.get("User-Id")  # the authenticated public key (Z85), set by the ZAP handler
        try:
            op, fields = wire.decode(frame.bytes, _NODE_OPS)
            if op in ("attach", "peer_beat", "detach", "join", "beat", "leave", "exited", "output"):
                reply = getattr(self, f"_on_{op}")(identity.bytes, key, fields)
            else:
                reply = getattr(self, f"_on_{op}")(key, fields)
        except Exception as exc:  # nothing a peer sends may end this loop (membership for everyone)
            self.malformed += 1
            self.limited(f"nexus head: dropped a malformed control frame: {exc!r}")
            return
        if reply is not None:
            with contextlib.suppress(zmq.ZMQError):  # a peer gone meanwhile: nothing to tell
                self.socket.send_multipart([identity.bytes, reply], zmq.NOBLOCK)

    def _on_join(self, identity: bytes, key: str, f: dict[str, Any]) -> bytes:
        resources = f["resources"]
        labels = f["labels"]
        if not all(isinstance(k, str) for k in resources) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            raise ValueError("a join whose resources or labels are not names to amounts and strings")
        now = self.clock.now
        info = {"pid": f["pid"]}
        record = self.membership.join(key, f["host"][:253], resources, labels, now, float(f["wall"]) - time.time(), info)
        mono = f.get("mono")
        if wire.is_int(mono):  # a first guess (one way: late by the link's latency), until its first beat says better
            record.mono_offset = time.monotonic_ns() - mono
        self.node_identity[record.node_id] = identity
        self.watch.joined(record)
        store = _offered_store(f)
        if self.runtime is not None:
            self.runtime.node_joined(record.node_id, record.resources, record.labels)
            if store is not None:
                self.runtime.store.add_node(record.node_id, record.host, *store, key)
        self.print(f"nexus head: node {record.node_id} ({record.host}, pid {f['pid']}) joined with {_amounts(record.resources)}")
        return wire.encode(
            "welcome",
            epoch=self.epoch,
            node_id=record.node_id,
            heartbeat=self.heartbeat,
            timeout=self.membership.timeout,
            wall=time.time(),
            mono=time.monotonic_ns(),
            cluster=self.keys.cluster,
            allowed=self._object_readers(),  # who its object server lets in
        )

    def _object_readers(self) -> list[str]:
        """The keys a peer's object server lets in: the allow-list's, and this head's."""
        return sorted(self.keys.allowed() | {self.keys.head.public})

    def _on_beat(self, identity: bytes, key: str, f: dict[str, Any]) -> bytes:
        node = f["node_id"]
        ours = f.get("epoch") == self.epoch and self.node_identity.get(node) == identity
        record = self.membership.heard(node, key, self.clock.now) if ours else None
        if record is None:
            known = self.membership.get(node) if ours else None
            why = known.why if known is not None else "it is not a node of this head's run (the head restarted, or it was never joined)"
            return wire.encode("fenced", node_id=node, why=why)
        self.watch.heard(record)
        offset = f.get("offset")
        if isinstance(offset, (int, float)) and not isinstance(offset, bool) and abs(offset) < 1e9:
            record.clock_offset = float(offset)
        if wire.is_int(f.get("mono")):
            record.mono_offset = f["mono"]
        if isinstance(f.get("procs"), list) and self.samples is not None:  # (its workers' CPU and memory)
            self.samples.take(node, lambda: [p.record for p in self.peers.values() if p.record.node == node], f["procs"], self.clock.now)
        return wire.encode("ack", mono=time.monotonic_ns(), seq=f.get("seq"))

    def _on_leave(self, identity: bytes, key: str, f: dict[str, Any]) -> None:
        if self.node_identity.get(f["node_id"]) != identity:
            return  # only the connection it joined on speaks for a node
        known = self.membership.get(f["node_id"])
        why = "it was drained" if known is not None and known.draining else "it left"
        self._leaves(f["node_id"], key, why, "left", "its node left")

    # -- attached drivers --------------------------------------------------------------------

    def _on_attach(self, identity: bytes, key: str, f: dict[str, Any]) -> bytes:
        rt = self.runtime
        if rt is None:
            return wire.encode("refused", why="this head runs no cluster to attach to")
        old = self.peers.pop(identity, None)
        if old is not None:
            self._peer_gone(old, "it attached again")
        kind = f.get("kind", "driver")
        node = f.get("node_id", 0)
        if kind in ("task", "actor"):
            member = self.membership.get(node) if isinstance(node, int) else None
            if member is None or not member.alive or member.key != key:
                return wire.encode("refused", why=f"node {node} is not a live member joined with this key")
        elif kind != "driver":
            raise ValueError(f"an attach of kind {str(kind)[:20]!r}")
        record = rt.peers.attach(_PeerConnection(self, identity), f["pid"], lambda: None, kind, node if kind != "driver" else 0)
        peer = self.peers[identity] = _Peer(identity, key, record, self.clock.now)

        def kill() -> None:  # (any thread): the loop thread drops it
            self.kills.append((peer, "the head dropped it"))
            self.wake()

        record.link._on_kill = kill
        what = f"a{'n actor' if kind == 'actor' else ''} worker of node {node}" if kind != "driver" else "a driver"
        self.print(f"nexus head: {what} attached from {f['host'][:253]} (pid {f['pid']}) as {record.name}")
        store, own = _offered_store(f) if kind == "driver" else None, 0
        if store is not None:
            own = record.worker_id  # (its puts are kept in its arena, under its worker id: no node has that number)
            rt.store.add_node(own, f["host"][:253], *store, key, record.name)
        return wire.encode(
            "attached",
            store=own,
            allowed=self._object_readers() if own else [],
            worker_id=record.index,
            node=rt.node_id,
            config=rt.config.to_json(),
            namespace=rt.namespace,
            heartbeat=self.heartbeat,
            timeout=self.membership.timeout,
        )

    def _on_peer_beat(self, identity: bytes, key: str, f: dict[str, Any]) -> bytes:
        peer = self.peers.get(identity)
        if peer is None or peer.key != key or peer.record.index != f["worker_id"]:
            return wire.encode("fenced", node_id=f["worker_id"], why="it is not attached to this head (declared gone?)")
        peer.last_heard = self.clock.now
        return wire.encode("ack")

    def _on_detach(self, identity: bytes, key: str, f: dict[str, Any]) -> None:
        peer = self.peers.get(identity)
        if peer is not None and peer.key == key and peer.record.index == f["worker_id"]:
            self._depart(peer, "it detached")

    def _on_exited(self, identity: bytes, key: str, f: dict[str, Any]) -> None:
        """A node's agent saw one of its workers exit: it is gone now, with its exit code (not when it goes silent)."""
        node = f["node_id"]
        if self.node_identity.get(node) != identity:
            return  # only the connection a node joined on speaks for it
        for peer in [p for p in self.peers.values() if p.record.node == node and p.record.pid == f["pid"]]:
            self._depart(peer, f"its process exited (exit code {f['code']})", f["code"])

    def _depart(self, peer: _Peer, why: str, code: int | None = None) -> None:
        """``peer`` left (detached, or its process exited): after what it sent before, if some is still on the data
        thread (a worker's last result, say), else now."""
        if peer.queued != peer.handled:
            peer.queued += 1
            self.slow.put((peer, (why, code)))
            return
        self._peer_gone(peer, why, code)

    def _on_output(self, identity: bytes, key: str, f: dict[str, Any]) -> None:
        """What a node's worker printed (its agent read it): into this head's log, named, and to attached drivers."""
        node, pid = f["node_id"], f["pid"]
        member = self.membership.get(node)
        if self.node_identity.get(node) != identity or member is None:
            return
        record = next((p.record for p in self.peers.values() if p.record.node == node and p.record.pid == pid), None)
        name = record.name if record is not None else "worker"
        lines = f["text"].split("\n")
        where = f" on {member.host}"
        target = sys.stderr if f["err"] else sys.stdout
        for line in lines:
            print(f"({name} pid={pid}{where}) {line}", file=target, flush=True)
        if self.runtime is not None:
            self.runtime.peers.tee_output(name, pid, f["err"], lines, where)

    def _drop_workers_of(self, node: int, why: str) -> None:
        """A node's workers go with it (they are fenced too: what they still say is not taken), and what it had."""
        rt = self.runtime
        if rt is not None:
            rt.node_gone(node, why)
        for peer in [p for p in self.peers.values() if getattr(p.record.link, "node", 0) == node]:
            self._peer_gone(peer, why)
        if rt is not None:
            with rt.lock:
                rt.scheduler.fail_stranded(node, why)
                rt.scheduler.dispatch()  # (tasks queued again to make values lost with the node: see head.lineage)

    def _peer_gone(self, peer: _Peer, why: str, code: int | None = None) -> None:
        if self.peers.get(peer.identity) is peer:
            del self.peers[peer.identity]
        self.runtime.peers.gone(peer.record, why, code)
        self.print(f"nexus head: {peer.record.name} is gone: {why}")

    def _on_data(self, identity: bytes, key: str | None, kind: bytes, frames: list[Any]) -> None:
        peer = self.peers.get(identity)
        if peer is None or peer.key != key:
            self.malformed += 1
            self.limited("nexus head: dropped data from a peer that is not attached")
            return
        peer.last_heard = self.clock.now
        if kind != DATA:  # the peer hears back at each part: its beats wait behind the rest of the message
            try:
                (peer.parts.first if kind == LAYOUT else peer.parts.add)(frames)
            finally:
                with contextlib.suppress(zmq.ZMQError):
                    self.socket.send_multipart([identity, _ACK], zmq.NOBLOCK)
            return
        frames = peer.parts.join(frames)
        if peer.queued != peer.handled or (len(frames) > 1 and sum(len(f) for f in frames) >= SLOW_BYTES):
            peer.queued += 1
            self.slow.put((peer, frames))
            return
        self._deliver(peer, frames)

    def _deliver(self, peer: _Peer, frames: list[Any]) -> None:
        try:
            loads = functools.partial(self.loads, node=self.runtime.store.key_of(peer.record))  # (a region it names: its arena's)
            body = unpack_frames([frames[0].bytes, *(f.buffer for f in frames[1:])], loads)
        except Exception as exc:
            self.malformed += 1
            self.limited(f"nexus head: dropped a malformed message from {peer.record.name}: {exc}")
            return
        self.runtime._handle(peer.record, body)

    def _data_loop(self) -> None:
        """The data thread: large messages, and each peer's messages behind one, in the order they came."""
        while (item := self.slow.get()) is not None:
            peer, frames = item
            try:
                if isinstance(frames, tuple):  # it left after them: (why, exit code)
                    self.kills.append((peer, *frames))
                    self.wake()
                elif peer.record.alive:  # (a peer declared gone meanwhile is fenced: what it said is not taken)
                    self._deliver(peer, frames)
            except Exception as exc:  # (as on the loop thread: said, and on)
                self.malformed += 1
                self.limited(f"nexus head: a message could not be handled: {exc!r}")
            finally:
                peer.handled += 1

    def _on_drain(self, key: str, f: dict[str, Any]) -> bytes:
        """Drain a node (any node key may ask, as any may join: the key is the cluster's)."""
        try:
            started = self.drains.start(f["node_id"], f["deadline"], f"a peer with the node key {key[:10]}...")
        except ValueError as exc:
            return wire.encode("refused", why=str(exc))
        return wire.encode("draining", **started)

    def _on_nodes(self, _key: str, _f: dict[str, Any]) -> bytes:
        return wire.encode("nodes", nodes=self.nodes_view(), refused=self.refused, malformed=self.malformed)

    def nodes_view(self) -> list[dict[str, Any]]:
        """The members as ``nexus status`` shows them, each with its task workers that take work."""
        ready: dict[int, int] = {}
        for w in list(self.runtime.workers) if self.runtime is not None else ():
            ready[w.node] = ready.get(w.node, 0) + (1 if w.ready else 0)
        return [{**r.describe(), "workers": ready.get(r.node_id, 0)} for r in list(self.membership)]  # (any thread)

    def close(self) -> None:
        if self.data_thread is not None and self.data_thread.is_alive():
            self.slow.put(None)
            self.data_thread.join(10)
        for peer in list(self.peers.values()):
            self._peer_gone(peer, "the head stopped")
        self.closed = True
        self.watch.close()
        os.close(self.wake_fd)
        if self.runtime is not None and self.runtime.store.puller is not None:
            self.runtime.store.puller.close()
            self.runtime.store.puller = None
        self.auth.stop()
        self.socket.close(0)
        self.context.term()


def _offered_store(f: dict[str, Any]) -> tuple[int, str] | None:
    """The arena a join or an attach offers (its size, where its objects are served), if it offers one."""
    store = f.get("store")
    if isinstance(store, dict) and wire.is_int(store.get("size")) and isinstance(store.get("address"), str):
        return store["size"], store["address"][:300]
    return None


def _amounts(resources: dict[str, float]) -> str:
    return amounts_text(resources) or "no resources"
