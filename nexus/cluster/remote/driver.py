"""A driver attached to a running head (``nexus.init(address=...)``): the session of a notebook that joins a cluster.

It asks the head what a worker asks its driver (submit, calls, get, wait,
put, refs: :class:`~nexus.cluster.worker.client.WorkerClient` makes the
requests), over one CURVE-authenticated DEALER socket that only its I/O
thread touches: callers queue frames and wake it. It maps no arena: values
travel with their bytes both ways. It beats; a head that stops answering for
the link's timeout fails every call in progress and every later one with
``SystemShutdownError`` (no call hangs on a head that is gone).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket as _socket
import threading
import time
from collections import deque
from typing import Any

from ...core.errors import SystemShutdownError
from ..config import ClusterConfig
from ..protocol import pack_frames, unpack_frames
from ..state.ids import IdSpace
from ..values import Blob, Pin, StoreClient, deserialize, set_client
from ..worker.client import WorkerClient, _Waiter
from . import wire
from .agent import _HEAD_OPS, HeadUnreachableError, NodeLink
from .keys import NodeKey
from .link import LinkThread

__all__ = ["AttachedDriver"]

_OPS = {**_HEAD_OPS, "attached": {"worker_id": int, "node": int, "config": str}, "refused": {"why": str}}


class _PeerStore(StoreClient):
    """Values here have no arena: they travel inline, or are pulled from the joined node that stores them; ref and
    pin changes go to the head, in order with the rest."""

    adopts_pins = True

    inline_when_full = True  # (its arena full: a value goes to the head with its bytes)

    def __init__(self, driver: AttachedDriver, key: NodeKey, arena: Any, node: int) -> None:
        from .objects import Puller

        self.driver = driver
        self.inline_max = driver.config.inline_max
        self.puller = Puller(key.pair, 2 * driver.timeout)
        self.arena = arena  # this driver's own (None: the head did not take it); its regions are handed out there
        self.node = node  # the number the head keeps that arena under

    def allocate(self, nbytes: int) -> int:
        from ..worker.store_client import reserve

        answer = self.driver._request(("alloc", nbytes))
        if isinstance(answer, Blob):
            raise deserialize(answer).to_exception()
        offset = int(answer)
        reserve(self, offset, nbytes)
        return offset

    def free(self, offset: int, nbytes: int) -> None:
        self.driver.send(("free", offset, nbytes))

    def pin(self, oid: int, region: tuple[int, int]) -> Pin:
        self.driver.ref_ops.append((oid, 0, 1))
        return self.arena.pin(region[0], region[1], lambda: self.driver.ref_ops.append((oid, 0, -1)))  # type: ignore[no-any-return]

    def adopt_pin(self, oid: int, region: tuple[int, int] | None) -> Any:
        from ..worker.store_client import _Hold

        if not oid:
            return None
        if region is not None and self.arena is not None:
            return self.arena.pin(region[0], region[1], lambda: self.driver.ref_ops.append((oid, 0, -1)))
        return _Hold(lambda: self.driver.ref_ops.append((oid, 0, -1)))

    def copied(self, oid: int, offset: int, ok: bool) -> None:
        self.driver.send(("copied", oid, offset, ok))

    def located(self, oid: int) -> Blob | None:
        blobs = self.driver.get_blobs([oid], None)
        return None if blobs is None else blobs[0]

    def acquire(self, oid: int) -> None:
        self.driver.ref_ops.append((oid, 1, 0))

    def acquire_many(self, oids: tuple[int, ...]) -> None:
        self.driver.ref_ops.extend((oid, 1, 0) for oid in oids)

    def release(self, oid: int) -> None:
        self.driver.ref_ops.append((oid, -1, 0))


class AttachedDriver(WorkerClient):
    attached = True  # (the state API and nexus.observe.hub() ask the head)

    def __init__(self, key: NodeKey, address: str, timeout: float = 10.0) -> None:
        self.address = address
        link = self.link = NodeLink(key, address)
        arena, server = _own_store(key, address)
        offered = {"store": {"size": arena.size, "address": server.address}} if server is not None else {}
        try:
            early: list[Any] = []  # data frames that come before the answer (the head's first messages to it)
            op, f = link.request("attach", timeout, ops=_OPS, data=early, host=_socket.gethostname(), pid=os.getpid(), **offered)
        except BaseException:
            link.close()
            _close_store(arena, server)
            raise
        if op != "attached":
            link.close()
            _close_store(arena, server)
            why = f.get("why", f"it answered {op!r}")
            raise ConnectionError(f"the head at {address} does not take drivers: {why}")
        own = f.get("store")
        if server is not None and wire.is_int(own) and own:
            server.node_id, server.allowed = own, {k for k in f.get("allowed", ()) if isinstance(k, str)}
        else:  # (a head that keeps no arena of a driver: its values go to the head)
            _close_store(arena, server)
            arena, server, own = None, None, 0
        self.object_server = server
        self.worker_id = f["worker_id"]
        self.node_id = f["node"]
        self.config = ClusterConfig.from_json(f["config"])
        self.namespace = str(f.get("namespace") or "default")
        self.heartbeat = float(f.get("heartbeat") or 0.5)
        self.timeout = float(f.get("timeout") or 5.0)
        self.id_space = IdSpace(self.node_id, self.worker_id)
        self.new_id = self.id_space.new
        self.shipped: set[bytes] = set()
        self.waiters: dict[int, _Waiter] = {}
        self.requests = itertools.count(1)
        self.queue_full = False
        self.queue_room = _Waiter([])
        self.submit_window = 1 << 62
        self.submitted = 0
        self.exiting = False
        self.lost: str | None = None  # why the head is gone, once it is
        self.observation_hub: Any = None  # the head's events, followed (nexus.observe.hub() makes it)
        self.ref_ops: deque[tuple[int, int, int]] = deque()
        self.send_lock = threading.Lock()  # a message and the ref changes made before it go in that order
        self.io = LinkThread(
            link.socket,
            self.heartbeat,
            self.timeout,
            wire.encode("peer_beat", worker_id=self.worker_id),
            on_data=self._received,
            on_control=self._control,
            on_lost=lambda why: self._lose(f"{why} (at {address})"),
            before_send=self._flush_ref_ops,
            name="nexus-attached",
        )
        self.store = _PeerStore(self, key, arena, own)
        set_client(self.store)
        for frames in early:
            self._received(frames)
        self.io.start()

    # -- what WorkerClient needs -----------------------------------------------------------

    def send(self, body: tuple[Any, ...]) -> None:
        if self.lost is not None:
            raise SystemShutdownError(self.lost)
        with self.send_lock:  # (sent from this thread: see LinkThread)
            refs = self._ref_body()
            self.io.send([b"D", *pack_frames(body if refs is None else ("batch", [refs, body]))])  # (one message: half the work)

    def _ref_body(self) -> tuple[Any, ...] | None:
        """The ref changes made so far, as the message to go before what is sent next (send lock held)."""
        ops = self.ref_ops
        if not ops:
            return None
        run = []
        with contextlib.suppress(IndexError):
            while True:
                run.append(ops.popleft())
        return ("refs", run)

    def _take_ref_ops(self) -> None:
        """Ref changes made so far go before what is sent next (called with the send lock held)."""
        refs = self._ref_body()
        if refs is not None:
            self.io.outgoing.append([b"D", *pack_frames(refs)])

    def _flush_ref_ops(self) -> None:
        """(The link's thread, each round: ref changes made while nothing else is sent go too.)"""
        if self.ref_ops and self.send_lock.acquire(blocking=False):
            try:
                self._take_ref_ops()
            finally:
                self.send_lock.release()

    def _wait(self, waiter: _Waiter, timeout: float | None, blocking: bool = True, told: bool = False) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not waiter.event.wait(0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic()))):
            if self.lost is not None:
                raise SystemShutdownError(self.lost)
            if deadline is not None and time.monotonic() >= deadline:
                return
        if self.lost is not None and any(i not in waiter.results for i in waiter.ids):
            raise SystemShutdownError(self.lost)  # woken because the head is gone, not answered

    # -- the I/O thread --------------------------------------------------------------------

    def _received(self, frames: list[Any]) -> None:
        """A data frame of the head's (from the link's thread, or kept from before it started)."""
        frames = [f if isinstance(f, bytes) else f.buffer for f in frames]
        body = unpack_frames([bytes(frames[1]), *frames[2:]])
        handler = getattr(self, f"_on_{body[0]}", None)
        if handler is not None:
            handler(body)

    def _control(self, frame: bytes) -> None:
        with contextlib.suppress(ValueError):
            op, f = wire.decode(frame, _OPS)
            if op == "fenced":
                self._lose(f"the head at {self.address} dropped this driver: {f['why']}")

    def _lose(self, why: str) -> None:
        self.lost = f"{why}; the cluster is gone for this driver (nexus.shutdown(), then nexus.init() to attach again)"
        for waiter in list(self.waiters.values()):
            waiter.event.set()  # (their _wait sees self.lost and raises)
        self.queue_room.event.set()

    def _on_output(self, body: tuple[Any, ...]) -> None:
        """What a worker of the cluster printed (the head sends it to every attached driver, named)."""
        import sys

        print(body[2], file=sys.stderr if body[1] else sys.stdout, flush=True)

    def _on_exit(self, _body: tuple[Any, ...]) -> None:
        self._lose(f"the head at {self.address} shut down")

    # -- the session ---------------------------------------------------------------------------

    def get_blobs(self, ids: Any, timeout: float | None) -> list[Blob] | None:
        blobs = super().get_blobs(ids, timeout)
        if self.lost is not None and blobs is None:
            raise SystemShutdownError(self.lost)
        return blobs

    def info(self) -> dict[str, Any]:
        return {"address": self.address, "attached_as": f"driver-{self.worker_id}", "namespace": self.namespace, "pid": os.getpid()}

    def shutdown(self) -> bool:
        """Detach: what this driver holds is let go at the head; the cluster goes on."""
        if not self.exiting:
            self.exiting = True
            if self.observation_hub is not None:
                self.observation_hub.close()
            if self.lost is None:
                with self.send_lock:
                    self._take_ref_ops()
                    self.io.outgoing.append([wire.encode("detach", worker_id=self.worker_id)])
                self.io.wake()
            self.io.close()
            self.link.close()
            self.store.puller.close()
            _close_store(self.store.arena, self.object_server)
            set_client(None)
        return True


def _own_store(key: NodeKey, address: str) -> tuple[Any, Any]:
    """This driver's arena (the values it puts are written there and stay there) and the server of its regions to
    other hosts; (None, None) if this host cannot have them (a /dev/shm too small, no address towards the head)."""
    import warnings

    from ..store import Arena, default_capacity
    from .agent import parse_address
    from .objects import ObjectServer, address_towards

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)  # (a small /dev/shm: large puts go to the head instead)
            arena = Arena.create(default_capacity(None))
        arena.unlink()  # nobody else maps it: it goes with this process, however it ends
    except (OSError, ValueError):
        return None, None
    try:
        server = ObjectServer(arena.view, key.pair, address_towards(*parse_address(address)))
    except OSError:
        arena.close()
        return None, None
    return arena, server  # (not prefaulted: a region is reserved by its writer as it is handed out, see reserve)


def _close_store(arena: Any, server: Any) -> None:
    if server is not None:
        server.close()
    if arena is not None:
        arena.close()


def attach(address: str, key_file: str | None, timeout: float = 10.0) -> AttachedDriver:
    """The session of this process attached to the head at ``address`` ("auto": the one started on this host)."""
    from .agent import parse_address
    from .daemon import head_folder
    from .keys import load_node_key

    if address != "auto":
        parse_address(address)  # a bad address says so before anything else
    if address == "auto" or key_file is None:
        import json

        from .files import private_folder

        state_path = head_folder() / "state.json"
        if state_path.parent.exists():
            private_folder(state_path.parent)  # this user's own, nobody else's, before its files are believed
        try:
            state = json.loads(state_path.read_text())
        except (OSError, ValueError):
            state = None
        if address == "auto":
            if state is None:
                raise ConnectionError(
                    "address='auto' attaches to a head started on this host, and none runs here "
                    f"(no {state_path}): `nexus start --head` first, or nexus.init() for a cluster of this process"
                )
            address = state["address"]
        key_file = key_file or os.environ.get("NEXUS_KEY") or (state or {}).get("node_key")
        if key_file is None:
            raise ValueError(f"attaching to {address} needs its key file: nexus.init(address=..., key='node.key') or NEXUS_KEY")
    try:
        return AttachedDriver(load_node_key(key_file), address, timeout)
    except HeadUnreachableError as exc:
        raise ConnectionError(str(exc)) from None
