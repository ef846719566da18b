"""Serializers: how a message body becomes the payload of an envelope, and back.

Each serializer has a codec id, carried in the envelope header (the payload
hint), and a registry maps ids to serializers. Two kinds matter for safety:

* codecs that run code while loading -- pickle and cloudpickle -- are for
  trusted links only (processes of one cluster, started by one user);
* safe codecs -- raw bytes, FlatBuffers tables, CBOR, JSON -- are what an
  untrusted link (a device, another user's host) may send.

Pickle protocol 5 moves large buffers (numpy arrays, memoryviews) *out of
band*: ``dumps`` hands them to the caller as separate buffers that can travel
through shared memory or as further frames, and the payload holds only a
reference. Nothing of the array's data is copied.
"""

from __future__ import annotations

import abc
import copyreg
import dataclasses
import enum
import io
import json
import pickle
import struct
from collections import ChainMap
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from ..core.errors import DeserializationError, SerializationError

__all__ = [
    "DEFAULT_OOB_THRESHOLD",
    "CborSerializer",
    "CloudPickleSerializer",
    "CodecId",
    "FlatBuffersSerializer",
    "JsonSerializer",
    "PickleSerializer",
    "RawSerializer",
    "Serializer",
    "SerializerRegistry",
    "default_registry",
    "describe_unserializable",
]

DEFAULT_OOB_THRESHOLD = 4096
"""Buffers smaller than this stay in band: below it, a separate buffer costs more than the copy it saves."""


class CodecId(enum.IntEnum):
    """Codec ids of the built-in serializers. Ids 64-255 are free for user codecs."""

    NONE = 0
    RAW = 1
    PICKLE = 2
    CLOUDPICKLE = 3
    FLATBUFFERS = 4
    CBOR = 5
    JSON = 6


FIRST_USER_CODEC = 64


class Serializer(abc.ABC):
    """Turns a body into payload bytes (plus, optionally, out-of-band buffers) and back.

    ``loads`` receives the message type registered for the envelope's message id
    (or ``None``) so that codecs without type information of their own (CBOR,
    JSON, FlatBuffers) can rebuild a typed object.
    """

    codec_id: ClassVar[int]
    name: ClassVar[str]
    runs_code_on_load: ClassVar[bool] = False
    """True when loading can execute code named by the payload: allowed on trusted links only."""
    supports_out_of_band: ClassVar[bool] = False

    @abc.abstractmethod
    def dumps(self, obj: Any, buffers: list[pickle.PickleBuffer] | None = None) -> bytes:
        """Serialize ``obj``; when ``buffers`` is a list and the codec supports it, large buffers go there instead of inline."""

    @abc.abstractmethod
    def loads(self, data: bytes | bytearray | memoryview, buffers: Sequence[Any] = (), message_type: type | None = None) -> Any:
        """Deserialize; ``buffers`` are the out-of-band buffers, in the order ``dumps`` produced them."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} codec={self.codec_id} ({self.name})>"


# -- pickle protocol 5 ----------------------------------------------------------------


def _rebuild_memoryview(buffer: Any, fmt: str, shape: tuple[int, ...]) -> memoryview:
    view = memoryview(buffer)
    if view.format != fmt or view.shape != shape:
        view = view.cast("B").cast(fmt, shape)  # type: ignore[call-overload]
    return view


def _castable(fmt: str) -> bool:
    try:
        memoryview(bytes(struct.calcsize(fmt))).cast(fmt)  # type: ignore[call-overload]
    except (ValueError, TypeError, struct.error):
        return False
    return True


def _reduce_memoryview(view: memoryview) -> tuple[Any, ...]:
    """Pickle a memoryview as a PickleBuffer, so it goes out of band like a numpy array.

    A format memoryview cannot cast to (non-native, such as ctypes' ``'<d'``)
    arrives as flat bytes (format ``'B'``).
    """
    fmt, shape = (view.format, view.shape) if _castable(view.format) else ("B", (view.nbytes,))
    if view.c_contiguous:
        return _rebuild_memoryview, (pickle.PickleBuffer(view), fmt, shape)
    return _rebuild_memoryview, (view.tobytes(), fmt, shape)


_DISPATCH: ChainMap[type, Any] = ChainMap({memoryview: _reduce_memoryview}, copyreg.dispatch_table)


class _Pickler(pickle.Pickler):
    dispatch_table = _DISPATCH


def _oob_callback(buffers: list[pickle.PickleBuffer], threshold: int) -> Any:
    def callback(buffer: pickle.PickleBuffer) -> bool:
        if memoryview(buffer).nbytes < threshold:
            return True  # in band
        buffers.append(buffer)
        return False

    return callback


def describe_unserializable(obj: Any, dumps: Any, limit: int = 200) -> str:
    """Name the innermost part of ``obj`` that ``dumps`` cannot serialize, as a path (``[1]['key'].attr``)."""
    path = ""
    current = obj
    for _ in range(8):  # depth bound: a path, not a proof
        children: list[tuple[str, Any]] = []
        if isinstance(current, (list, tuple)):
            children = [(f"[{i}]", v) for i, v in enumerate(current[:limit])]
        elif isinstance(current, dict):
            children = [(f"[{k!r}]", v) for k, v in list(current.items())[:limit]]
        elif isinstance(current, (set, frozenset)):
            children = [("{item}", v) for v in list(current)[:limit]]
        elif hasattr(current, "__dict__") and not isinstance(current, type):
            children = [(f".{k}", v) for k, v in list(vars(current).items())[:limit]]
        for step, child in children:
            try:
                dumps(child)
            except Exception:
                path += step
                current = child
                break
        else:
            break
    text = repr(current)
    if len(text) > 80:
        text = text[:77] + "..."
    where = f" at {path}" if path else ""
    return f"{type(current).__qualname__} object {text}{where}"


def _serialization_error(obj: Any, codec: str, exc: BaseException, dumps: Any) -> SerializationError:
    culprit = describe_unserializable(obj, dumps)
    return SerializationError(f"cannot serialize {culprit} with {codec}: {exc}")


class PickleSerializer(Serializer):
    """Pickle protocol 5, with out-of-band buffers for numpy arrays, memoryviews and other PEP 574 buffers."""

    codec_id = CodecId.PICKLE
    name = "pickle"
    runs_code_on_load = True
    supports_out_of_band = True

    def __init__(self, oob_threshold: int = DEFAULT_OOB_THRESHOLD) -> None:
        self.oob_threshold = oob_threshold

    def dumps(self, obj: Any, buffers: list[pickle.PickleBuffer] | None = None) -> bytes:
        callback = None if buffers is None else _oob_callback(buffers, self.oob_threshold)
        mark = 0 if buffers is None else len(buffers)
        try:
            return pickle.dumps(obj, 5, buffer_callback=callback)
        except TypeError as exc:  # memoryviews need our dispatch table, which the C fast path above lacks
            if buffers is not None:
                del buffers[mark:]
            if "memoryview" not in str(exc):
                raise _serialization_error(obj, self.name, exc, lambda o: pickle.dumps(o, 5)) from exc
        except Exception as exc:
            if buffers is not None:
                del buffers[mark:]
            raise _serialization_error(obj, self.name, exc, lambda o: pickle.dumps(o, 5)) from exc
        stream = io.BytesIO()
        try:
            _Pickler(stream, 5, buffer_callback=callback).dump(obj)
        except Exception as exc:
            if buffers is not None:
                del buffers[mark:]
            raise _serialization_error(obj, self.name, exc, lambda o: _Pickler(io.BytesIO(), 5).dump(o)) from exc
        return stream.getvalue()

    def loads(self, data: bytes | bytearray | memoryview, buffers: Sequence[Any] = (), message_type: type | None = None) -> Any:
        return pickle.loads(data, buffers=buffers)


class CloudPickleSerializer(PickleSerializer):
    """cloudpickle: also functions, lambdas and classes defined in a notebook or ``__main__`` (by value)."""

    codec_id = CodecId.CLOUDPICKLE
    name = "cloudpickle"

    def __init__(self, oob_threshold: int = DEFAULT_OOB_THRESHOLD) -> None:
        super().__init__(oob_threshold)
        import cloudpickle

        class Pickler(cloudpickle.Pickler):  # type: ignore[misc,name-defined]
            dispatch_table = ChainMap({memoryview: _reduce_memoryview}, cloudpickle.Pickler.dispatch_table)

        self._pickler = Pickler

    def dumps(self, obj: Any, buffers: list[pickle.PickleBuffer] | None = None) -> bytes:
        callback = None if buffers is None else _oob_callback(buffers, self.oob_threshold)
        mark = 0 if buffers is None else len(buffers)
        stream = io.BytesIO()
        try:
            self._pickler(stream, 5, buffer_callback=callback).dump(obj)
        except Exception as exc:
            if buffers is not None:
                del buffers[mark:]
            raise _serialization_error(obj, self.name, exc, lambda o: self._pickler(io.BytesIO(), 5).dump(o)) from exc
        return stream.getvalue()


# -- safe codecs -------------------------------------------------------------------------


class RawSerializer(Serializer):
    """Bytes as they are: ``bytes``, ``bytearray`` or a contiguous ``memoryview``; loads gives ``bytes``."""

    codec_id = CodecId.RAW
    name = "raw"

    def dumps(self, obj: Any, buffers: list[pickle.PickleBuffer] | None = None) -> bytes:
        if isinstance(obj, bytes):
            return obj
        if isinstance(obj, (bytearray, memoryview)):
            return bytes(obj)
        raise SerializationError(f"the raw codec takes bytes, bytearray or memoryview, not {type(obj).__qualname__}; pick another codec")

    def loads(self, data: bytes | bytearray | memoryview, buffers: Sequence[Any] = (), message_type: type | None = None) -> Any:
        return bytes(data)


def _to_plain(obj: Any) -> Any:
    """A dataclass instance becomes the mapping of its fields (shallow); everything else is left as is."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    return obj


def _from_plain(value: Any, message_type: type | None, codec: str) -> Any:
    if message_type is None or not dataclasses.is_dataclass(message_type):
        return value
    if not isinstance(value, dict):
        raise DeserializationError(
            f"{codec} payload for {message_type.__qualname__} is a {type(value).__name__}, not a mapping of its fields"
        )
    try:
        return message_type(**value)
    except TypeError as exc:
        raise DeserializationError(f"{codec} payload does not fit {message_type.__qualname__}: {exc}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class JsonSerializer(Serializer):
    """JSON (UTF-8). Dataclasses registered as message types travel as objects of their fields."""

    codec_id = CodecId.JSON
    name = "json"

    def dumps(self, obj: Any, buffers: list[pickle.PickleBuffer] | None = None) -> bytes:
        try:
            return json.dumps(_to_plain(obj), separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise _serialization_error(obj, self.name, exc, lambda o: json.dumps(_to_plain(o), allow_nan=False)) from exc

    def loads(self, data: bytes | bytearray | memoryview, buffers: Sequence[Any] = (), message_type: type | None = None) -> Any:
        text = bytes(data).decode("utf-8")  # strictly UTF-8 (json.loads would also guess UTF-16 and UTF-32)
        return _from_plain(json.loads(text, parse_constant=_no_constant), message_type, self.name)


CBOR_SAFE_TAGS = frozenset({0, 1, 2, 3, 55799})
"""Tags a CBOR payload may carry from an untrusted peer: date/time (0, 1), bignums (2, 3), self-describe."""
CBOR_MAX_DEPTH = 64
CBOR_MAX_BIGNUM = 64


def check_cbor(data: bytes) -> None:
    """Walk a CBOR item without building it: only :data:`CBOR_SAFE_TAGS`, bounded nesting and bignums.

    Raises ValueError on anything else (including truncation), so hostile input
    never reaches a decoder that would compile a regex or build a huge Decimal.
    """
    pos = 0
    end = len(data)
    pending = [1]  # items still expected at each open level; -2: until a break

    def head() -> tuple[int, int, int]:
        nonlocal pos
        if pos >= end:
            raise ValueError("CBOR item is truncated")
        initial = data[pos]
        pos += 1
        major, info = initial >> 5, initial & 31
        if info < 24:
            return major, info, info
        if info > 27:
            if info == 31 and major in (2, 3, 4, 5, 7):
                return major, info, -1  # indefinite length (or break, for major 7)
            raise ValueError(f"CBOR additional information {info} is reserved")
        width = 1 << (info - 24)
        if pos + width > end:
            raise ValueError("CBOR item is truncated")
        value = int.from_bytes(data[pos : pos + width], "big")
        pos += width
        return major, info, value

    bignum_next = False
    while pending:
        top = pending[-1]
        if top == 0:
            pending.pop()
            continue
        major, _info, value = head()
        if major == 7 and value == -1:  # break: ends an indefinite-length item
            if top != -2:
                raise ValueError("CBOR break outside an indefinite-length item")
            pending.pop()
            continue
        if top > 0:
            pending[-1] = top - 1
        if major == 6:
            if value not in CBOR_SAFE_TAGS:
                raise ValueError(f"CBOR tag {value} is not accepted from an untrusted peer")
            bignum_next = value in (2, 3)
            pending.append(1)  # the tagged item
            continue
        if major in (2, 3):
            if value == -1:
                pending.append(-2)  # chunks until a break
            elif value > end - pos:
                raise ValueError("CBOR string is longer than the payload")
            elif bignum_next and value > CBOR_MAX_BIGNUM:
                raise ValueError(f"CBOR bignum of {value} bytes is larger than {CBOR_MAX_BIGNUM}")
            else:
                pos += value
        elif major in (4, 5):
            if len(pending) > CBOR_MAX_DEPTH:
                raise ValueError(f"CBOR nesting deeper than {CBOR_MAX_DEPTH}")
            if value == -1:
                pending.append(-2)
            else:
                count = value * (2 if major == 5 else 1)
                if count > end - pos:
                    raise ValueError("CBOR container claims more items than the payload holds")
                pending.append(count)
        bignum_next = False
    if pos != end:
        raise ValueError(f"{end - pos} bytes after the CBOR item")


class CborSerializer(Serializer):
    """CBOR (RFC 8949) through ``cbor2``: compact, and easy to write from C on a device."""

    codec_id = CodecId.CBOR
    name = "cbor"

    def __init__(self) -> None:
        import cbor2

        self._cbor2 = cbor2

    def dumps(self, obj: Any, buffers: list[pickle.PickleBuffer] | None = None) -> bytes:
        try:
            return bytes(self._cbor2.dumps(_to_plain(obj)))
        except (self._cbor2.CBOREncodeError, TypeError, ValueError) as exc:
            raise _serialization_error(obj, self.name, exc, lambda o: self._cbor2.dumps(_to_plain(o))) from exc

    def loads(self, data: bytes | bytearray | memoryview, buffers: Sequence[Any] = (), message_type: type | None = None) -> Any:
        data = bytes(data)
        check_cbor(data)  # before cbor2 sees it: its semantic tags (regex, decimal, MIME, ...) can cost seconds
        return _from_plain(self._cbor2.loads(data), message_type, self.name)


class FlatBuffersSerializer(Serializer):
    """FlatBuffers tables: the layout a device can read in place.

    ``dumps`` takes a finished FlatBuffer (bytes) or an object-API instance of
    generated code (anything with ``Pack(builder)``). ``loads`` returns the
    generated *table accessor* of the message type registered for the
    envelope's message id (for an object-API class ``FooT``, the ``Foo`` beside
    it); without a type, the bytes. The accessor reads lazily: Python's
    FlatBuffers runtime has no verifier, and unpacking a hostile buffer eagerly
    can take unbounded time (shared offsets make a small buffer describe a huge
    graph). ``unpack=True`` returns object-API instances instead: for trusted
    links only.
    """

    codec_id = CodecId.FLATBUFFERS
    name = "flatbuffers"

    def __init__(self, unpack: bool = False) -> None:
        self.unpack = unpack

    def dumps(self, obj: Any, buffers: list[pickle.PickleBuffer] | None = None) -> bytes:
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return bytes(obj)
        pack = getattr(obj, "Pack", None)
        if pack is None:
            raise SerializationError(
                f"the flatbuffers codec takes a finished buffer or an object-API instance with Pack(builder), not {type(obj).__qualname__}"
            )
        import flatbuffers

        builder = flatbuffers.Builder(256)
        builder.Finish(pack(builder))
        return bytes(builder.Output())

    def loads(self, data: bytes | bytearray | memoryview, buffers: Sequence[Any] = (), message_type: type | None = None) -> Any:
        data = bytes(data)
        if message_type is None:
            return data
        if hasattr(message_type, "GetRootAs"):
            return message_type.GetRootAs(data, 0)
        if hasattr(message_type, "InitFromPackedBuf"):
            if self.unpack:
                return message_type.InitFromPackedBuf(data, 0)
            table: Any = _table_class(message_type)
            if table is not None:
                return table.GetRootAs(data, 0)
        raise DeserializationError(f"{message_type.__qualname__} is not generated FlatBuffers code (no InitFromPackedBuf or GetRootAs)")


def _table_class(object_api: type) -> type | None:
    """The generated table class beside an object-API class (``FooT`` -> ``Foo``), if there is one."""
    import sys

    name = object_api.__name__
    module = sys.modules.get(object_api.__module__)
    table = getattr(module, name[:-1], None) if name.endswith("T") else None
    return table if hasattr(table, "GetRootAs") else None


# -- the registry ----------------------------------------------------------------------------


class SerializerRegistry:
    """Serializers by codec id. Registering a second serializer under a taken id is an error."""

    def __init__(self, serializers: Sequence[Serializer] = ()) -> None:
        self._by_id: dict[int, Serializer] = {}
        for serializer in serializers:
            self.register(serializer)

    def register(self, serializer: Serializer, *, replace: bool = False) -> Serializer:
        codec = serializer.codec_id
        if not isinstance(codec, int) or not 0 < codec < 256:
            raise ValueError(f"codec id of {serializer!r} must be in 1..255 (user codecs: {FIRST_USER_CODEC}..255)")
        taken = self._by_id.get(codec)
        if taken is not None and not replace:
            raise ValueError(f"codec id {codec} is taken by {taken!r}; pass replace=True to replace it")
        self._by_id[codec] = serializer
        return serializer

    def get(self, codec_id: int) -> Serializer:
        try:
            return self._by_id[codec_id]
        except KeyError:
            raise KeyError(f"no serializer has codec id {codec_id} (known: {self.describe()})") from None

    def find(self, codec_id: int) -> Serializer | None:
        return self._by_id.get(codec_id)

    def by_name(self, name: str) -> Serializer:
        for serializer in self._by_id.values():
            if serializer.name == name:
                return serializer
        raise KeyError(f"no serializer is named {name!r} (known: {self.describe()})")

    def describe(self) -> str:
        return ", ".join(f"{s.codec_id} {s.name}" for s in self) or "none"

    def __iter__(self) -> Iterator[Serializer]:
        return iter(sorted(self._by_id.values(), key=lambda s: s.codec_id))

    def __contains__(self, codec_id: object) -> bool:
        return codec_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)


def default_registry(oob_threshold: int = DEFAULT_OOB_THRESHOLD) -> SerializerRegistry:
    """A new registry holding every built-in serializer."""
    return SerializerRegistry(
        [
            RawSerializer(),
            PickleSerializer(oob_threshold),
            CloudPickleSerializer(oob_threshold),
            FlatBuffersSerializer(),
            CborSerializer(),
            JsonSerializer(),
        ]
    )
