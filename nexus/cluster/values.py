"""Values as they travel between processes: ObjectRefs, serialized blobs, remote errors.

A value is serialized once, where it is made (pickle protocol 5, cloudpickle
when plain pickle cannot), into a :class:`Blob`: the in-band payload plus its
out-of-band buffers. Buffers of at least :data:`SHM_THRESHOLD` bytes are
copied once into a shared-memory segment of their own and travel as its name;
smaller ones travel inline. The driver stores blobs and forwards them to the
workers that need them without deserializing them.
"""

from __future__ import annotations

import pickle
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import NexusError, SerializationError
from ..messaging.serializers import CloudPickleSerializer
from .shm_util import attach_segment, create_segment, unlink_segment

__all__ = ["SHM_THRESHOLD", "Blob", "ObjectRef", "RemoteError", "SegmentBuffer", "TaskError"]

SHM_THRESHOLD = 1 << 20
"""Out-of-band buffers from this size on go through a shared-memory segment instead of the ring."""

_serializer: list[CloudPickleSerializer] = []


def _cloudpickle() -> CloudPickleSerializer:
    """Made on first use: importing nexus must not import cloudpickle."""
    if not _serializer:
        _serializer.append(CloudPickleSerializer(oob_threshold=64 * 1024))
    return _serializer[0]


class TaskError(NexusError):
    """A remote task or method raised an exception that cannot travel as itself (it does not pickle)."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in another process; set as the ``__cause__`` of the re-raised error."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class SegmentBuffer:
    """An out-of-band buffer stored in its own shared-memory segment."""

    name: str
    nbytes: int


@dataclass
class Blob:
    """A serialized value: payload, buffers (bytes or segments), and whether it is an error."""

    payload: Any  # bytes, or a SegmentBuffer when it is large
    buffers: list[Any] = field(default_factory=list)
    error: bool = False

    @property
    def segments(self) -> list[str]:
        names = [b.name for b in self.buffers if isinstance(b, SegmentBuffer)]
        if isinstance(self.payload, SegmentBuffer):
            names.append(self.payload.name)
        return names

    def __reduce__(self) -> tuple[Any, ...]:
        return Blob, (self.payload, self.buffers, self.error)


@dataclass
class RemoteError:
    """What a failed task leaves behind: the exception (if it pickles), its type name, the remote traceback."""

    exception: BaseException | None
    type_name: str
    message: str
    traceback_text: str
    where: str

    def to_exception(self) -> BaseException:
        cause = RemoteTraceback(f"\n(in {self.where})\n{self.traceback_text}")
        if self.exception is not None:
            exc = self.exception
        else:
            exc = TaskError(f"{self.type_name}: {self.message} (raised in {self.where}; the exception itself does not pickle)")
        exc.__cause__ = cause
        return exc


# -- segments this process has attached ------------------------------------------------

_attached: dict[str, memoryview] = {}
_attached_lock = threading.Lock()


def _segment_view(buffer: SegmentBuffer) -> memoryview:
    """A read-only view of the buffer's segment (mapped read-only: writing through it is impossible)."""
    with _attached_lock:
        view = _attached.get(buffer.name)
        if view is None:
            view = attach_segment(buffer.name, readonly=True).buf
            _attached[buffer.name] = view
    return view[: buffer.nbytes]


def forget_segment(name: str) -> None:
    """Drop this process's cached mapping of ``name`` (values still viewing it keep it mapped)."""
    with _attached_lock:
        _attached.pop(name, None)


def _store_buffer(buffer: pickle.PickleBuffer, created: list[Any]) -> Any:
    view = memoryview(buffer).cast("B")
    if view.nbytes < SHM_THRESHOLD:
        return bytes(view)
    segment = create_segment("obj", view.nbytes)
    segment.buf[: view.nbytes] = view
    created.append(segment.name)
    segment.buf.release()
    return SegmentBuffer(segment.name, view.nbytes)


_SCALARS = frozenset({type(None), bool, int, float, complex})
_SIZED = frozenset({str, bytes})


_NO_ARGUMENTS: tuple[tuple[()], dict[str, Any]] = ((), {})
_NO_ARGUMENTS_PICKLED = pickle.dumps(_NO_ARGUMENTS, 5)


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


def serialize(value: Any, what: str = "value") -> tuple[Blob, list[Any]]:
    """Serialize ``value``; returns the blob and the names of the segments created for it (the caller frees them).

    cloudpickle, always: a value may hold instances of classes defined in a
    notebook, which plain pickle would send by a name the worker cannot import.
    Small trees of builtins (most arguments) skip it: plain pickle writes the
    same bytes for them, several times faster.
    """
    if type(value) is tuple and len(value) == 2 and type(value[0]) is tuple and type(value[1]) is dict and not value[0] and not value[1]:
        return Blob(_NO_ARGUMENTS_PICKLED), []
    if _plain(value):
        return Blob(pickle.dumps(value, 5)), []
    buffers: list[pickle.PickleBuffer] = []
    try:
        payload = _cloudpickle().dumps(value, buffers)
    except SerializationError as exc:
        raise SerializationError(f"cannot send {what}: {exc}") from exc.__cause__
    created: list[Any] = []
    try:
        stored = [_store_buffer(b, created) for b in buffers]
        if len(payload) >= SHM_THRESHOLD:  # a big in-band payload (bytes, str, lists) goes the same way as big buffers
            payload = _store_buffer(pickle.PickleBuffer(payload), created)
    except BaseException:
        for name in created:
            unlink_segment(name)
        raise
    return Blob(payload, stored), created


def serialize_handed_over(value: Any, what: str = "value") -> Blob:
    """Serialize in a worker: the segments it creates belong to the driver from now on, which frees them."""
    return serialize(value, what)[0]


def deserialize(blob: Blob) -> Any:
    buffers = [_segment_view(b) if isinstance(b, SegmentBuffer) else b for b in blob.buffers]
    payload = _segment_view(blob.payload) if isinstance(blob.payload, SegmentBuffer) else blob.payload
    return pickle.loads(payload, buffers=buffers)


def error_blob(exc: BaseException, where: str) -> Blob:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    error = RemoteError(None, type(exc).__qualname__, str(exc), text, where)
    try:
        exc_copy = exc.with_traceback(None)
        payload = pickle.dumps(RemoteError(exc_copy, error.type_name, error.message, text, where), 5)
        pickle.loads(payload)  # some exceptions pickle but do not unpickle (required init arguments)
    except Exception:
        payload = pickle.dumps(error, 5)
    return Blob(payload, [], error=True)


# -- ObjectRef ---------------------------------------------------------------------------------

_release_hook: Any = None  # set by the runtime of this process: called with an object id when a ref dies


def set_release_hook(hook: Any) -> None:
    global _release_hook
    _release_hook = hook


class ObjectRef:
    """A reference to a value that a task returns or ``put`` stored; resolve it with ``nexus.get``."""

    __slots__ = ("__weakref__", "_counted", "id")

    def __init__(self, object_id: int, counted: bool = True) -> None:
        self.id = object_id
        self._counted = counted

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild_ref, (self.id,)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"ObjectRef({self.id:016x})"

    def __del__(self) -> None:
        hook = _release_hook
        if hook is not None and self._counted:
            try:
                hook(self.id)
            except Exception:
                pass

    def hex(self) -> str:
        return f"{self.id:016x}"

    def __await__(self) -> Any:
        """``await ref`` in a coroutine (a notebook cell, an async actor): the value, without blocking the event loop."""
        import asyncio

        from .api import get

        return asyncio.get_running_loop().run_in_executor(None, get, self).__await__()


def _rebuild_ref(object_id: int) -> ObjectRef:
    # A ref that arrived inside a value: the owner keeps the object while any copy may exist (see values docs).
    return ObjectRef(object_id, counted=False)


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
