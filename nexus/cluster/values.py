"""Values as they travel between processes: ObjectRefs, serialized blobs, remote errors.

A value is serialized once, where it is made (pickle protocol 5, cloudpickle
when plain pickle cannot), into a :class:`Blob`: the in-band payload plus its
out-of-band buffers. When the buffers (numpy arrays, large bytes) come to
``ClusterConfig.inline_max`` or more, they are copied once into a
region of the cluster's arena (see :mod:`nexus.cluster.store`) and travel as
:class:`Slice` references to it; smaller values travel inline. The driver
stores blobs and forwards them without deserializing them. A blob records the
ObjectRefs serialized inside it, so that the objects they name live as long
as the value holding them.

Each process has a :class:`StoreClient` (set by its runtime) that allocates
regions, maps them for reading and reports reference changes to the driver.
"""

from __future__ import annotations

import pickle
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

from ..core.errors import NexusError, ObjectLostError, ObjectStoreFullError, SerializationError
from ..messaging.serializers import CloudPickleSerializer
from . import session
from .config import ClusterConfig
from .failures import RemoteTraceback, TaskError, as_task_error
from .store import PAGE, Pin

__all__ = ["Blob", "ObjectRef", "RemoteError", "Slice", "StoreClient", "TaskError"]

_serializer: list[CloudPickleSerializer] = []


def _cloudpickle() -> CloudPickleSerializer:
    """Made on first use: importing nexus must not import cloudpickle."""
    if not _serializer:
        _serializer.append(CloudPickleSerializer(oob_threshold=16 * 1024))
    return _serializer[0]


@dataclass(frozen=True)
class Slice:
    """An out-of-band buffer stored in the arena, at an absolute offset."""

    offset: int
    nbytes: int


class Blob:
    """A serialized value: payload, buffers (bytes or arena slices), whether it is an error.

    ``region`` is the arena region (offset, size) the slices live in; ``refs``
    the ids of the ObjectRefs serialized inside; ``oid`` the object it is
    stored as (0 until it is). In a worker, a blob with a region that arrives
    from the driver holds a :class:`~nexus.cluster.store.Pin` of it (the
    driver pinned it when it sent it): the memory cannot be reused while the
    blob or any view read from it is alive. ``at`` is set when the region is
    in a joined node's arena, not this host's: ``(node, address, server key)``
    of that node's object server (see :mod:`nexus.cluster.remote.objects`).
    """

    __slots__ = ("at", "buffers", "error", "oid", "payload", "pin", "refs", "region")

    def __init__(
        self,
        payload: Any,
        buffers: list[Any] | None = None,
        error: bool = False,
        region: tuple[int, int] | None = None,
        refs: tuple[int, ...] = (),
        oid: int = 0,
        at: tuple[Any, ...] | None = None,
    ) -> None:
        self.payload = payload  # bytes, or a Slice when it is large
        self.buffers = buffers if buffers is not None else []
        self.error = error
        self.region = region
        self.refs = refs
        self.oid = oid
        self.at = at
        self.pin: Pin | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        if self.at is not None:
            return _rebuild_blob, (self.payload, self.buffers, self.error, self.region, self.refs, self.oid, self.at)
        return _rebuild_blob, (self.payload, self.buffers, self.error, self.region, self.refs, self.oid)

    def copy(self) -> Blob:
        """The same blob, a new object (each shipment holds a pin of its own)."""
        return Blob(self.payload, self.buffers, self.error, self.region, self.refs, self.oid, self.at)

    def __repr__(self) -> str:
        size = len(self.payload) if isinstance(self.payload, bytes) else self.payload.nbytes
        where = "" if self.at is None else f", on node {self.at[0]:x}"
        return f"Blob(oid={self.oid:x}, payload={size} B, buffers={len(self.buffers)}, region={self.region}{where}, refs={len(self.refs)})"

    @property
    def nbytes(self) -> int:
        """Bytes it occupies: inline payload and buffers, or its arena region."""
        if self.region is not None:
            return self.region[1]
        return (len(self.payload) if isinstance(self.payload, bytes) else 0) + sum(
            len(b) if isinstance(b, bytes) else 0 for b in self.buffers
        )

    def moved(self, offset: int) -> Blob:
        """The same blob with its region moved to ``offset`` of this host's arena (restored from disk, fetched from a node)."""
        assert self.region is not None
        delta = offset - self.region[0]

        def move(part: Any) -> Any:
            return Slice(part.offset + delta, part.nbytes) if isinstance(part, Slice) else part

        return Blob(move(self.payload), [move(b) for b in self.buffers], self.error, (offset, self.region[1]), self.refs, self.oid)

    def parts(self) -> list[tuple[int, int]]:
        """The ``(offset, nbytes)`` of its slices: its buffers, then its payload if that is one."""
        parts = [(b.offset, b.nbytes) for b in self.buffers if isinstance(b, Slice)]
        if isinstance(self.payload, Slice):
            parts.append((self.payload.offset, self.payload.nbytes))
        return parts

    def parts_at(self, view: memoryview, offset: int) -> list[memoryview]:
        """Views of ``view`` where its parts go in a region of the same layout at ``offset`` (a copy of it there)."""
        assert self.region is not None
        delta = offset - self.region[0]
        return [view[at + delta : at + delta + n] for at, n in self.parts()]


def _rebuild_blob(payload: Any, buffers: list[Any], error: bool, region: Any, refs: tuple[int, ...], oid: int, at: Any = None) -> Blob:
    blob = Blob(payload, buffers, error, region, refs, oid, tuple(at) if at is not None else None)
    client = _client
    if oid and (region is not None or refs) and client is not None and client.adopts_pins:
        # The driver pinned it for us when it sent it (see Runtime._ship); a region in another node's arena is
        # held, not mapped
        mapped = region if at is None or at[0] == client.node else None
        blob.pin = client.adopt_pin(oid, mapped)
    return blob


class StoreClient:
    """What values need from the object store in this process; the runtime of the process sets one.

    ``allocate``/``free`` hand out arena regions; ``pin`` maps one read-only and
    counts a reader pin; ``adopt_pin`` takes over a pin the driver made when it
    sent a blob here; ``acquire``/``release`` count ObjectRefs.
    """

    adopts_pins = False
    arena: Any = None
    node = 0  # the joined node whose arena ``arena`` is (0: this host's head's)
    puller: Any = None  # reads regions of other nodes' arenas (remote.objects.Puller), where there are joined nodes
    inline_when_full = False  # a value the arena has no room for goes with its bytes instead
    inline_max = ClusterConfig.inline_max  # the runtime sets its cluster's

    def allocate(self, nbytes: int) -> int:
        raise NotImplementedError

    def free(self, offset: int, nbytes: int) -> None:
        raise NotImplementedError

    def pin(self, oid: int, region: tuple[int, int]) -> Pin:
        raise NotImplementedError

    def adopt_pin(self, oid: int, region: tuple[int, int] | None) -> Any:
        return None

    def acquire(self, oid: int) -> None:
        raise NotImplementedError

    def acquire_many(self, oids: tuple[int, ...]) -> None:
        for oid in oids:
            self.acquire(oid)

    def release(self, oid: int) -> None:
        raise NotImplementedError

    def copied(self, oid: int, offset: int, ok: bool) -> None:
        """Tell the head that a copy it asked for in this process's arena is written (or given up)."""

    def located(self, oid: int) -> Blob | None:
        """Object ``oid`` as the head has it now, after a pull of it failed: a get (it waits while the object is
        made again). None where there is no head to ask."""
        return None


_client: StoreClient | None = None


def set_client(client: StoreClient | None) -> None:
    global _client
    _client = client


def current_client() -> StoreClient | None:
    return _client


@dataclass
class RemoteError:
    """What a failed task leaves behind: the exception (if it pickles), its type name, the remote traceback."""

    exception: BaseException | None
    type_name: str
    message: str
    traceback_text: str
    where: str
    user: bool = False  # raised by a task's or method's own code (then a TaskError too, as Ray's RayTaskError)

    def to_exception(self) -> BaseException:
        cause = RemoteTraceback(f"\n(in {self.where})\n{self.traceback_text}")
        if isinstance(self.exception, Exception):
            exc: BaseException = as_task_error(self.exception) if self.user else self.exception
        elif self.exception is not None:  # KeyboardInterrupt, CancelledError...: not the caller's own to raise
            exc = TaskError(f"{self.type_name}: {self.message} (raised in {self.where})")
        else:
            from .failures import unserializable_task_error

            exc = unserializable_task_error(self.type_name, self.message, self.where)
        exc.__cause__ = cause
        return exc


# -- serializing ------------------------------------------------------------------------------

_collector = threading.local()


_SCALARS = frozenset({type(None), bool, int, float, complex})
_SIZED = frozenset({str, bytes})
_NO_ARGUMENTS_PICKLED = pickle.dumps(((), {}), 5)


def _plain(value: Any, depth: int = 0) -> bool:
    """True for small trees of builtin scalars, strings and containers: plain pickle writes them as cloudpickle would."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind in _SIZED:
        return len(value) < 4096
    if kind not in (tuple, list, dict) or depth >= 3 or len(value) > 16:
        return False
    if kind is dict:
        return all(type(k) is str and _plain(v, depth + 1) for k, v in value.items())
    return all(_plain(v, depth + 1) for v in value)


def _align(n: int, to: int = 64) -> int:
    return (n + to - 1) // to * to


def serialize(value: Any, what: str = "value", oid: int = 0, inline: bool = False) -> Blob:
    """Serialize ``value`` into a blob; large buffers go to an arena region (the caller owns the blob's region).

    cloudpickle, unless the value is a small tree of builtins (most
    arguments), for which plain pickle writes the same bytes several times
    faster: a value may hold instances of classes defined in a notebook,
    which plain pickle would send by a name the worker cannot import.
    """
    if type(value) is tuple and len(value) == 2 and type(value[0]) is tuple and type(value[1]) is dict and not value[0] and not value[1]:
        return Blob(_NO_ARGUMENTS_PICKLED, oid=oid)
    if _plain(value):
        return Blob(pickle.dumps(value, 5), oid=oid)
    buffers: list[pickle.PickleBuffer] = []
    refs: list[int] = []
    outer = getattr(_collector, "refs", None)
    _collector.refs = refs
    try:
        payload = _cloudpickle().dumps(value, buffers)
    except SerializationError as exc:
        raise SerializationError(f"cannot send {what}: {exc}") from exc.__cause__
    finally:
        _collector.refs = outer
    views = [memoryview(b).cast("B") for b in buffers]
    client = _client
    inline_max = ClusterConfig.inline_max if client is None else client.inline_max
    big = sum(v.nbytes for v in views) + (len(payload) if len(payload) >= inline_max else 0)
    if big < inline_max or inline or client is None or client.arena is None:
        return Blob(payload, [bytes(v) for v in views], refs=tuple(refs), oid=oid)
    try:
        return _to_arena(client, payload, views, tuple(refs), oid)
    except ObjectStoreFullError:
        if not client.inline_when_full:
            raise
    return Blob(payload, [bytes(v) for v in views], refs=tuple(refs), oid=oid)  # (a joined node's arena is full: via the head)


def _to_arena(client: StoreClient, payload: bytes, views: list[memoryview], refs: tuple[int, ...], oid: int) -> Blob:
    """Copy the buffers (and a large payload) into one region of the arena, once."""
    parts: list[Any] = list(views)
    big_payload = len(payload) >= client.inline_max
    if big_payload:
        parts.append(memoryview(payload))
    size = sum(_align(p.nbytes) for p in parts)
    offset = client.allocate(size)
    try:
        arena = client.arena
        at = offset
        slices = []
        for part in parts:
            arena.write(at, part)
            slices.append(Slice(at, part.nbytes))
            at += _align(part.nbytes)
    except BaseException:
        client.free(offset, size)
        raise
    stored_payload: Any = slices.pop() if big_payload else payload
    return Blob(stored_payload, slices, region=(offset, _round_page(size)), refs=refs, oid=oid)


def _round_page(n: int) -> int:
    return (max(n, 1) + PAGE - 1) // PAGE * PAGE


_batch = threading.local()  # refs counted ahead, in one go, for the value being deserialized on this thread


def deserialize(blob: Blob) -> Any:
    """The value of ``blob``. The refs inside it (``blob.refs``, in the order they are rebuilt) are counted in
    one batch before, rather than one by one as pickle rebuilds them."""
    client = _client
    refs = blob.refs
    if len(refs) < 8 or client is None:
        return _loads(blob)
    client.acquire_many(refs)
    outer = getattr(_batch, "taken", None)
    _batch.taken = 0
    try:
        return _loads(blob)
    except BaseException:
        for oid in refs[_batch.taken :]:  # counted for refs that were never made: give those back
            client.release(oid)
        raise
    finally:
        _batch.taken = outer


def _loads(blob: Blob) -> Any:
    if blob.region is None:
        return pickle.loads(blob.payload, buffers=blob.buffers)
    client = _client
    if blob.at is not None and (client is None or client.node != blob.at[0]):
        return _pulled(blob, client)
    pin = blob.pin
    if pin is None:
        if client is None:
            raise NexusError("this value lives in the object store of a cluster that is not running here")
        pin = client.pin(blob.oid, blob.region)
    base = memoryview(pin)
    start = blob.region[0]

    def view(part: Any) -> Any:
        return base[part.offset - start : part.offset - start + part.nbytes] if isinstance(part, Slice) else part

    return pickle.loads(view(blob.payload), buffers=[view(b) for b in blob.buffers])


def _pulled(blob: Blob, client: StoreClient | None) -> Any:
    """The value of a blob in another node's arena, its parts pulled from there: into this process's arena when the
    head gave a region of it for a copy (``at``'s fourth item; the head is told, and the next reader here reads that
    copy in place), else into memory of their own (a part in one frame is a view of it).

    A pull that fails (the node died, or is cut off) asks the head where the object is now: a node declared dead has
    its values made again elsewhere (lineage), or failed naming it, and that ask waits for it. While the head still
    has the object where the pull failed, it is pulled again after a pause (the node may be alive after all)."""
    assert blob.at is not None
    if client is None or client.puller is None:
        raise NexusError(f"this value lives on node {blob.at[0]:x} of a cluster this process is not attached to")
    for pause in _PULL_AGAIN_AFTER:
        try:
            return _pull(blob, client)
        except ObjectLostError:
            fresh = client.located(blob.oid) if pause is not None and blob.oid else None
            if fresh is None:
                raise
        if fresh.error or fresh.at is None or tuple(fresh.at[:3]) != tuple(blob.at[:3]):  # (elsewhere now, or lost)
            value = deserialize(fresh)
            if fresh.error:
                raise value.to_exception()
            return value
        time.sleep(pause or 0.0)
        blob = fresh
    raise AssertionError("unreachable: the last round raises")


_PULL_AGAIN_AFTER = (1.0, 4.0, None)
"""Pauses before a failed pull is tried again while the head still has the object there (None: the last try)."""


def _pull(blob: Blob, client: StoreClient) -> Any:
    assert blob.at is not None
    if len(blob.at) > 3 and client.arena is not None:
        here = _copied_here(blob, client, blob.at[3])
        if here is not None:
            return _loads(here)
    views = iter(client.puller.pull(blob.at, blob.parts()))
    buffers = [next(views) if isinstance(b, Slice) else b for b in blob.buffers]
    payload = next(views) if isinstance(blob.payload, Slice) else blob.payload
    return pickle.loads(payload, buffers=buffers)


def _copied_here(blob: Blob, client: StoreClient, offset: int) -> Blob | None:
    """Pull ``blob``'s parts into ``offset`` of this process's arena, in its layout there; the copy, read in place
    (None if this host's memory has no room: the head is told either way)."""
    assert blob.region is not None and blob.at is not None
    size = blob.region[1]
    ok = False
    try:
        try:
            client.arena.ensure(offset, size)
        except OSError:
            return None
        client.puller.pull(blob.at, blob.parts(), into=blob.parts_at(client.arena.view, offset))
        ok = True
    finally:
        client.copied(blob.oid, offset, ok)
    here = blob.moved(offset)  # (in this arena: pinned for reading as any value here is)
    return here


def error_blob(exc: BaseException, where: str, user: bool = False) -> Blob:
    """A failure as a blob: the exception itself when it travels, else its type name, message and traceback
    (``user``: raised by a task's or method's own code).

    cloudpickle, as for functions: an exception class defined in a notebook
    or script (``__main__``) travels by value and arrives as the caller's own
    class, so ``except MyError`` catches it.
    """
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    error = RemoteError(None, type(exc).__qualname__, str(exc), text, where, user)
    try:
        remote = RemoteError(exc.with_traceback(None), error.type_name, error.message, text, where, user)
        try:
            if type(exc).__module__ == "__main__":  # plain pickle would name it, and other processes lack it
                raise pickle.PicklingError("by value")
            payload = pickle.dumps(remote, 5)  # by reference, twice as fast (most exceptions)
        except Exception:
            payload = _cloudpickle().dumps(remote)
        pickle.loads(payload)  # some exceptions pickle but do not unpickle (required init arguments)
    except Exception:
        payload = pickle.dumps(error, 5)
    return Blob(payload, error=True)


# -- ObjectRef ---------------------------------------------------------------------------------


class ObjectRef:
    """A reference to a value that a task returns or ``put`` stored; resolve it with ``nexus.get``."""

    __slots__ = ("__weakref__", "_client", "id")

    def __init__(self, object_id: int, counted: bool = True) -> None:
        self.id = object_id
        # The store it is counted in: a ref that outlives its cluster releases nothing in the next one.
        self._client = _client if counted else None

    def __reduce__(self) -> tuple[Any, ...]:
        refs = getattr(_collector, "refs", None)
        if refs is not None:  # serialized inside a value: the value keeps the object alive
            refs.append(self.id)
        return _rebuild_ref, (self.id,)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"ObjectRef({self.id:016x})"

    def __del__(self) -> None:
        client = self._client
        if client is not None and client is _client:
            try:
                client.release(self.id)
            except Exception:
                pass

    def hex(self) -> str:
        return f"{self.id:016x}"

    def future(self) -> Any:
        """A :class:`concurrent.futures.Future` of the value (as Ray's ``ref.future()``)."""
        from .ref_futures import future_of

        return future_of(self, _resolve)

    def as_future(self, _internal: bool = False) -> Any:
        """An :class:`asyncio.Future` of the value (or of the error ``get`` would raise), on the running event loop
        (as Ray's ``ref.as_future()``); cancelling it only stops the waiting, not the work."""
        import asyncio  # (here, not at the top: a worker starts without it)

        return asyncio.wrap_future(self.future())

    def _on_completed(self, callback: Any) -> None:
        """Call ``callback(value)`` once the value is there (with the error instead, if it failed)."""
        from .ref_futures import on_completed

        on_completed(self, _resolve, callback)

    def __await__(self) -> Any:
        """``await ref`` in a coroutine (a notebook cell, an async actor): the value, without blocking the event loop."""
        import asyncio

        return asyncio.get_running_loop().run_in_executor(None, _resolve, self).__await__()


def _resolve(ref: ObjectRef) -> Any:
    """``nexus.get(ref)`` for ``await ref``, from the session that :mod:`nexus.cluster.session` holds.

    Not by importing ``get``: :mod:`nexus.cluster.api` imports this module, and importing it back made a cycle.
    """
    runtime = session.current()
    if runtime is None:
        raise RuntimeError("no Nexus cluster in this process: call nexus.init() first")
    blobs = runtime.get_blobs([ref.id], None)
    assert blobs is not None  # no timeout
    blob = blobs[0]
    value = deserialize(blob)
    if blob.error:
        raise value.to_exception()
    return value


def _rebuild_ref(object_id: int) -> ObjectRef:
    """A ref that arrived inside a value: counted like any other (the value holding it kept the object alive until now)."""
    client = _client
    if client is None:
        return ObjectRef(object_id, counted=False)
    taken = getattr(_batch, "taken", None)
    if taken is None:
        client.acquire(object_id)
    else:
        _batch.taken = taken + 1  # counted already, with the others of this value
    return ObjectRef(object_id)


class DepMarker:
    """Stands in an argument list for a top-level ObjectRef; the worker puts the resolved value in its place."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self) -> tuple[Any, ...]:
        return DepMarker, (self.index,)


def split_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any], list[int]]:
    """Replace top-level ObjectRefs by markers; returns the new args, kwargs and the ids they stand for."""
    deps: list[int] = []
    if not args and not kwargs:
        return args, kwargs, deps

    def swap(value: Any) -> Any:
        if isinstance(value, ObjectRef):
            deps.append(value.id)
            return DepMarker(len(deps) - 1)
        return value

    if not any(isinstance(a, ObjectRef) for a in args) and not any(isinstance(v, ObjectRef) for v in kwargs.values()):
        return args, kwargs, deps
    return tuple(swap(a) for a in args), {k: swap(v) for k, v in kwargs.items()}, deps


def join_args(args: tuple[Any, ...], kwargs: dict[str, Any], values: list[Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if not values:
        return args, kwargs

    def fill(value: Any) -> Any:
        return values[value.index] if isinstance(value, DepMarker) else value

    return tuple(fill(a) for a in args), {k: fill(v) for k, v in kwargs.items()}
