"""The envelope: one FlatBuffers format for every message that leaves a process.

The schema is ``envelope.fbs`` beside this module. Two paths read and write it:

* the fast path, :func:`encode_envelope` / :func:`decode_envelope`, used on the
  hot path. The encoder writes a fixed, precomputed layout with :mod:`struct`
  instead of the generic ``flatbuffers.Builder`` (which costs ~35 us per
  envelope here, more than a whole call may cost). Its output is an ordinary
  FlatBuffer: the official reader and the generated accessors read it back. The
  decoder reads *any* valid envelope -- from this encoder, from the generic
  builder, from C on a device, or from a newer writer with added fields -- and
  checks bounds before every access: hostile bytes raise :class:`EnvelopeError`
  and nothing else, in time and memory bounded by their length.
* the generic path, :func:`~nexus.messaging.envelope_reference.encode_envelope_generic` /
  :func:`~nexus.messaging.envelope_reference.decode_envelope_generic` (in
  :mod:`.envelope_reference`), built on the code ``flatc`` generated from
  the schema (``nexus.messaging.fbs``). It is the reference the fast path is
  tested against; its reader trusts its input, so never use it on the wire.

Layout written by the fast encoder (offsets in bytes; every scalar is aligned
to its size, so a C reader on a strict-alignment device can read it in place)::

    0    root offset -> 44          4   file identifier "NXE1"
    8    vtable of Envelope         20  vtable of MessageHeader (+2 pad)
    44   Envelope table             64  MessageHeader table
    136  sender string, target string, payload vector (data 8-aligned),
         buffers vector (elements 8-aligned)
"""

from __future__ import annotations

import enum
import struct
from typing import Any, NamedTuple

from ..core.errors import EnvelopeError

__all__ = [
    "DEFAULT_MAX_ENVELOPE_SIZE",
    "FILE_IDENTIFIER",
    "FORMAT_VERSION",
    "BufferRef",
    "Envelope",
    "Flags",
    "Kind",
    "decode_envelope",
    "encode_envelope",
]

FORMAT_VERSION = 1
"""Raised only by a change that old readers cannot read; readers reject envelopes above their own version."""

FILE_IDENTIFIER = b"NXE1"

DEFAULT_MAX_ENVELOPE_SIZE = 64 * 1024 * 1024
"""Largest envelope accepted unless a link says otherwise. Large data travels out of band, not inline."""


class Kind(enum.IntEnum):
    """What a message is for (the schema's ``Kind`` enum)."""

    USER = 0
    SYSTEM = 1
    ASK = 2
    REPLY = 3
    ERROR = 4
    HEARTBEAT = 5
    CONTROL = 6
    TASK = 7
    TASK_RESULT = 8


class Flags(enum.IntFlag):
    """Bits of the header's ``flags`` field. Unknown bits are carried through untouched."""

    NONE = 0
    NO_REPLY = 1 << 0
    """The sender wants no reply (a tell); the receiver drops a reply instead of sending it."""
    REDELIVERED = 1 << 1
    """A retry of a message that may have been delivered before."""
    SYSTEM_LANE = 1 << 2
    """Deliver ahead of user messages (lifecycle traffic)."""


class BufferRef(NamedTuple):
    """Where an out-of-band part of a payload lives.

    ``segment == 0`` means the part travels beside the envelope as frame number
    ``offset`` (for example a further ZeroMQ frame); any other ``segment``
    names a shared-memory arena, with the part ``length`` bytes at ``offset``.
    """

    segment: int
    offset: int
    length: int


_U64 = (1 << 64) - 1


class Envelope:
    """One message as it travels: a header, an inline payload and out-of-band buffer references.

    ``payload`` is the body serialized by the codec named in ``codec``;
    ``message_id`` names the body's type for readers without Python (0: none).
    ``trace_id`` (128 bits), ``span_id`` (64 bits) and ``trace_flags`` are the
    W3C trace context, all zero when untraced.
    """

    __slots__ = (
        "kind",
        "payload",
        "codec",
        "message_id",
        "correlation_id",
        "sender",
        "target",
        "trace_id",
        "span_id",
        "trace_flags",
        "timestamp_ns",
        "flags",
        "buffers",
        "version",
    )

    def __init__(
        self,
        kind: int = Kind.USER,
        payload: bytes | bytearray | memoryview = b"",
        codec: int = 0,
        message_id: int = 0,
        correlation_id: int = 0,
        sender: str = "",
        target: str = "",
        trace_id: int = 0,
        span_id: int = 0,
        trace_flags: int = 0,
        timestamp_ns: int = 0,
        flags: int = 0,
        buffers: tuple[BufferRef, ...] = (),
        version: int = FORMAT_VERSION,
    ) -> None:
        self.kind = kind
        self.payload = payload
        self.codec = codec
        self.message_id = message_id
        self.correlation_id = correlation_id
        self.sender = sender
        self.target = target
        self.trace_id = trace_id
        self.span_id = span_id
        self.trace_flags = trace_flags
        self.timestamp_ns = timestamp_ns
        self.flags = flags
        self.buffers = buffers
        self.version = version

    def _key(self) -> tuple[Any, ...]:
        return tuple(bytes(v) if isinstance(v, (bytearray, memoryview)) else v for v in (getattr(self, n) for n in self.__slots__))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Envelope):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        try:
            kind: object = Kind(self.kind).name
        except ValueError:
            kind = self.kind
        payload = bytes(self.payload)
        shown = repr(payload[:32]) + ("..." if len(payload) > 32 else "")
        return (
            f"Envelope(kind={kind}, codec={self.codec}, message_id={self.message_id:#x}, "
            f"correlation_id={self.correlation_id}, sender={self.sender!r}, target={self.target!r}, "
            f"payload={shown} ({len(payload)} B), buffers={len(self.buffers)})"
        )


# -- the fast encoder ----------------------------------------------------------

# Envelope table at 44: soffset, header, payload, buffers, version (+2 pad): 20 bytes.
# MessageHeader table at 64: soffset, message_id, correlation_id, timestamp_ns,
# trace (32 bytes), sender, target, flags, kind, codec (+2 pad): 72 bytes.
_ENV_TABLE = 44
_HDR_TABLE = 64
_ENV_VTABLE = 8
_HDR_VTABLE = 20
_STRINGS = 136
_ENV_VT = struct.pack("<6H", 12, 20, 16, 4, 8, 12)  # version, header, payload, buffers
_HDR_VT = struct.pack("<11H", 22, 72, 68, 69, 4, 8, 56, 60, 24, 16, 64)  # kind codec message_id corr sender target trace ts flags
_PREFIX = (
    struct.pack("<I4s", _ENV_TABLE, FILE_IDENTIFIER)
    + _ENV_VT
    + _HDR_VT
    + b"\0\0"
    + struct.pack("<iI", _ENV_TABLE - _ENV_VTABLE, _HDR_TABLE - (_ENV_TABLE + 4))
)
assert len(_PREFIX) == 52
# From 52: payload and buffers offsets, version, header soffset, the header's scalars.
_FIXED = struct.Struct("<IIHxxiIQqQQQB7xIIIBBxx")
assert _PREFIX.__len__() + _FIXED.size == _STRINGS
_PAYLOAD_FIELD = 52
_BUFFERS_FIELD = 56
_SENDER_FIELD = 120
_TARGET_FIELD = 124
_HDR_SOFFSET = _HDR_TABLE - _HDR_VTABLE

_U32_PACK = struct.Struct("<I").pack
_PADS = (b"", b"\0", b"\0\0", b"\0\0\0", b"\0\0\0\0", b"\0" * 5, b"\0" * 6, b"\0" * 7)
_STRING_CACHE: dict[str, bytes] = {}
_STRING_CACHE_LIMIT = 4096


_STRING_CACHE_MAX_LENGTH = 256


def _string_record(text: str) -> bytes:
    """Length prefix, UTF-8 bytes, NUL, padding to 4. Addresses repeat, so records of short strings are cached."""
    record = _STRING_CACHE.get(text)
    if record is None:
        try:
            data = text.encode()
        except (UnicodeEncodeError, AttributeError) as exc:
            raise EnvelopeError(f"cannot encode address {text!r:.80}: not a valid str ({exc})") from None
        size = 4 + len(data) + 1
        record = _U32_PACK(len(data)) + data + _PADS[(-size) % 4 + 1]
        if len(text) <= _STRING_CACHE_MAX_LENGTH:
            if len(_STRING_CACHE) >= _STRING_CACHE_LIMIT:
                _STRING_CACHE.clear()
            _STRING_CACHE[text] = record
    return record


def _flat_payload(payload: Any) -> tuple[Any, int]:
    """The payload as a flat byte buffer and its length in bytes (arrays count bytes, not items)."""
    if payload.__class__ is bytes:
        return payload, len(payload)
    try:
        view = memoryview(payload)
    except TypeError:
        raise EnvelopeError(f"payload must be bytes-like, not {type(payload).__qualname__}") from None
    if not view.c_contiguous:
        raise EnvelopeError("payload must be a contiguous buffer; copy it with bytes() first")
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view, view.nbytes


def encode_envelope(envelope: Envelope, max_size: int = DEFAULT_MAX_ENVELOPE_SIZE) -> bytes:
    """Write ``envelope`` as a FlatBuffer, without the generic builder.

    Raises :class:`EnvelopeError` when a field does not fit its type or the
    result would exceed ``max_size``.
    """
    e = envelope
    sender = _string_record(e.sender)
    target = _string_record(e.target)
    payload, plen = _flat_payload(e.payload)
    buffers = e.buffers
    target_pos = _STRINGS + len(sender)
    end = target_pos + len(target)  # a multiple of 4
    lead = 0 if end & 7 == 4 else 4  # payload data starts 8-aligned
    payload_pos = end + lead
    after = payload_pos + 4 + plen
    tail = (4 - after) & 7  # the buffers' length prefix sits at 4 mod 8, its elements 8-aligned
    buffers_pos = after + tail
    total = buffers_pos + 4 + 24 * len(buffers)
    if total > max_size:
        raise EnvelopeError(f"envelope of {total} bytes exceeds the maximum of {max_size}; send large data out of band")
    trace = e.trace_id
    try:
        fixed = _FIXED.pack(
            payload_pos - _PAYLOAD_FIELD,
            buffers_pos - _BUFFERS_FIELD,
            e.version,
            _HDR_SOFFSET,
            e.message_id,
            e.correlation_id,
            e.timestamp_ns,
            trace >> 64,
            trace & _U64,
            e.span_id,
            e.trace_flags,
            _STRINGS - _SENDER_FIELD,
            target_pos - _TARGET_FIELD,
            e.flags,
            e.kind,
            e.codec,
        )
        if buffers:
            if any(len(ref) != 3 for ref in buffers):
                raise TypeError("every buffer ref is (segment, offset, length)")
            refs = struct.pack(f"<I{3 * len(buffers)}Q", len(buffers), *[v for ref in buffers for v in ref])
        else:
            refs = b"\0\0\0\0"
    except (struct.error, TypeError) as exc:
        raise EnvelopeError(f"cannot encode {e!r}: a field is out of range for its type ({exc})") from None
    return b"".join((_PREFIX, fixed, sender, target, _PADS[lead], _U32_PACK(plen), payload, _PADS[tail], refs))


# -- the checked decoder ---------------------------------------------------------

_FIXED_UNPACK = _FIXED.unpack_from
_READ_U32 = struct.Struct("<I").unpack_from
_I32 = struct.Struct("<i").unpack_from
_U16 = struct.Struct("<H").unpack_from
_VT_HEAD = struct.Struct("<HH").unpack_from
_TRACE = struct.Struct("<QQQB").unpack_from
_BUFFER_REF = struct.Struct("<QQQ")

# Known fields: (slot, size, struct format or kind of reference).
_ENV_VERSION, _ENV_HEADER, _ENV_PAYLOAD, _ENV_BUFFERS = range(4)
_HDR_SCALARS = (
    # slot, name, size, format
    (0, "kind", 1, "<B"),
    (1, "codec", 1, "<B"),
    (2, "message_id", 4, "<I"),
    (3, "correlation_id", 8, "<Q"),
    (7, "timestamp_ns", 8, "<q"),
    (8, "flags", 4, "<I"),
)
_HDR_SENDER, _HDR_TARGET, _HDR_TRACE = 4, 5, 6


def _fail(what: str) -> EnvelopeError:
    return EnvelopeError(f"malformed envelope: {what}")


def _string(buf: Any, size: int, at: int, what: str) -> str:
    """The string that the uoffset at ``at`` points to, checked."""
    pos = at + _READ_U32(buf, at)[0]
    if pos & 3 or pos + 4 > size:
        raise _fail(f"{what} points outside the buffer")
    n = _READ_U32(buf, pos)[0]
    start = pos + 4
    if n >= size - start or buf[start + n] != 0:
        raise _fail(f"{what} runs past the end of the buffer or lacks its terminator")
    try:
        return str(buf[start : start + n], "utf-8")
    except UnicodeDecodeError:
        raise _fail(f"{what} is not UTF-8") from None


def _vector(buf: Any, size: int, at: int, element: int, align: int, what: str) -> tuple[int, int]:
    """(start of elements, count) of the vector that the uoffset at ``at`` points to, checked."""
    pos = at + _READ_U32(buf, at)[0]
    if pos & 3 or pos + 4 > size:
        raise _fail(f"{what} points outside the buffer")
    n = _READ_U32(buf, pos)[0]
    start = pos + 4
    if n and start & (align - 1):  # an empty vector's elements need no alignment (flatc writes them 4-aligned)
        raise _fail(f"{what} is misaligned")
    if n * element > size - start:
        raise _fail(f"{what} holds {n} elements, more than the buffer has")
    return start, n


MAX_BUFFER_REFS = 4096
"""More out-of-band parts than this in one envelope is refused (each costs far more in Python than on the wire)."""


def _buffer_refs(buf: Any, size: int, at: int) -> tuple[BufferRef, ...]:
    start, n = _vector(buf, size, at, 24, 8, "buffers")
    if not n:
        return ()
    if n > MAX_BUFFER_REFS:
        raise _fail(f"{n} out-of-band buffers, more than the {MAX_BUFFER_REFS} a reader accepts")
    unpack = _BUFFER_REF.unpack_from
    return tuple(BufferRef(*unpack(buf, start + 24 * i)) for i in range(n))


def _table(buf: Any, size: int, pos: int, what: str) -> tuple[int, int, int]:
    """(vtable position, vtable size, table size) of the table at ``pos``, checked."""
    if pos & 3 or pos + 4 > size:
        raise _fail(f"{what} table lies outside the buffer")
    vt = pos - _I32(buf, pos)[0]
    if vt < 0 or vt & 1 or vt + 4 > size:
        raise _fail(f"{what} vtable lies outside the buffer")
    vt_size, tbl_size = _VT_HEAD(buf, vt)
    if vt_size < 4 or vt_size & 1 or vt + vt_size > size:
        raise _fail(f"{what} vtable has a bad size ({vt_size})")
    if tbl_size < 4 or pos + tbl_size > size:
        raise _fail(f"{what} table has a bad size ({tbl_size})")
    return vt, vt_size, tbl_size


def _field(buf: Any, table: int, vt: int, vt_size: int, tbl_size: int, slot: int, width: int, what: str) -> int:
    """Absolute position of field ``slot`` of a table, or 0 when absent; checked to lie inside the table, aligned."""
    entry = 4 + 2 * slot
    if entry >= vt_size:
        return 0
    off = _U16(buf, vt + entry)[0]
    if not off:
        return 0
    if off < 4 or off + width > tbl_size:
        raise _fail(f"field {what} lies outside its table")
    pos = table + off
    if pos & (min(width, 8) - 1):
        raise _fail(f"field {what} is misaligned")
    return pos


def decode_envelope(data: bytes | bytearray | memoryview, max_size: int = DEFAULT_MAX_ENVELOPE_SIZE) -> Envelope:
    """Read an envelope from untrusted bytes.

    Every offset is checked before it is followed; anything that is not a valid
    envelope of a version this reader knows raises :class:`EnvelopeError`. The
    payload is returned as a copy (``bytes``), so ``data`` may be reused at once.
    """
    if data.__class__ is not bytes and data.__class__ is not bytearray and data.__class__ is not memoryview:
        try:
            data = memoryview(data)
        except TypeError:
            raise EnvelopeError(f"an envelope is bytes-like, not {type(data).__qualname__}") from None
    if data.__class__ is memoryview:
        view: memoryview = data  # type: ignore[assignment]
        if view.format != "B" or view.ndim != 1:
            if not view.c_contiguous:
                raise EnvelopeError("envelope bytes must be a contiguous buffer")
            data = view.cast("B")
        size = data.nbytes  # type: ignore[union-attr]
    else:
        size = len(data)
    if size > max_size:
        raise EnvelopeError(f"envelope of {size} bytes exceeds the maximum of {max_size}")
    if size >= _STRINGS and data[:52] == _PREFIX:
        return _decode_fast(data, size)
    try:
        return _decode_any(data, size)
    except struct.error as exc:  # a read the checks above missed; keep the promise of one error type
        raise _fail(str(exc)) from None


def _decode_fast(buf: Any, size: int) -> Envelope:
    """The layout our encoder writes: field positions are known; every offset is still checked (inlined: hot path)."""
    (
        payload_off,
        buffers_off,
        version,
        hdr_soffset,
        message_id,
        correlation_id,
        timestamp_ns,
        trace_hi,
        trace_lo,
        span_id,
        trace_flags,
        sender_off,
        target_off,
        flags,
        kind,
        codec,
    ) = _FIXED_UNPACK(buf, 52)
    if hdr_soffset != _HDR_SOFFSET:
        return _decode_any(buf, size)
    if version > FORMAT_VERSION:
        raise _version_error(version)
    u32 = _READ_U32
    # sender and target: length, bytes, NUL
    pos = _SENDER_FIELD + sender_off
    if pos & 3 or pos + 4 > size:
        raise _fail("sender points outside the buffer")
    n = u32(buf, pos)[0]
    s0 = pos + 4
    if n >= size - s0 or buf[s0 + n] != 0:
        raise _fail("sender runs past the end of the buffer or lacks its terminator")
    pos = _TARGET_FIELD + target_off
    if pos & 3 or pos + 4 > size:
        raise _fail("target points outside the buffer")
    m = u32(buf, pos)[0]
    t0 = pos + 4
    if m >= size - t0 or buf[t0 + m] != 0:
        raise _fail("target runs past the end of the buffer or lacks its terminator")
    try:
        sender = str(buf[s0 : s0 + n], "utf-8")
        target = str(buf[t0 : t0 + m], "utf-8")
    except UnicodeDecodeError:
        raise _fail("sender or target is not UTF-8") from None
    # payload
    pos = _PAYLOAD_FIELD + payload_off
    if pos & 3 or pos + 4 > size:
        raise _fail("payload points outside the buffer")
    n = u32(buf, pos)[0]
    p0 = pos + 4
    if n > size - p0:
        raise _fail(f"payload holds {n} bytes, more than the buffer has")
    # buffers: usually none
    pos = _BUFFERS_FIELD + buffers_off
    if pos & 3 or pos + 4 > size:
        raise _fail("buffers points outside the buffer")
    buffers = _buffer_refs(buf, size, _BUFFERS_FIELD) if u32(buf, pos)[0] else ()
    return Envelope(
        kind,
        bytes(buf[p0 : p0 + n]),
        codec,
        message_id,
        correlation_id,
        sender,
        target,
        (trace_hi << 64) | trace_lo,
        span_id,
        trace_flags,
        timestamp_ns,
        flags,
        buffers,
        version,
    )


def _version_error(version: int) -> EnvelopeError:
    return EnvelopeError(f"envelope format version {version} is newer than this reader's ({FORMAT_VERSION}); upgrade nexus on this side")


def _decode_any(buf: Any, size: int) -> Envelope:
    """Any valid envelope: the vtables say where each field is (absent fields take their defaults)."""
    if size < 12:
        raise _fail(f"{size} bytes is too short for an envelope")
    if bytes(buf[4:8]) != FILE_IDENTIFIER:
        raise _fail(f"file identifier is {bytes(buf[4:8])!r}, not {FILE_IDENTIFIER!r}: these bytes are not a Nexus envelope")
    root = _READ_U32(buf, 0)[0]
    vt, vt_size, tbl_size = _table(buf, size, root, "Envelope")

    at = _field(buf, root, vt, vt_size, tbl_size, _ENV_VERSION, 2, "version")
    version = _U16(buf, at)[0] if at else 1
    if version > FORMAT_VERSION:
        raise _version_error(version)

    at = _field(buf, root, vt, vt_size, tbl_size, _ENV_PAYLOAD, 4, "payload")
    if at:
        start, n = _vector(buf, size, at, 1, 1, "payload")
        payload = bytes(buf[start : start + n])
    else:
        payload = b""
    at = _field(buf, root, vt, vt_size, tbl_size, _ENV_BUFFERS, 4, "buffers")
    buffers = _buffer_refs(buf, size, at) if at else ()

    at = _field(buf, root, vt, vt_size, tbl_size, _ENV_HEADER, 4, "header")
    if not at:
        raise _fail("no header")
    header = at + _READ_U32(buf, at)[0]
    hvt, hvt_size, htbl_size = _table(buf, size, header, "MessageHeader")
    values: dict[str, Any] = {}
    for slot, name, width, fmt in _HDR_SCALARS:
        at = _field(buf, header, hvt, hvt_size, htbl_size, slot, width, name)
        values[name] = struct.unpack_from(fmt, buf, at)[0] if at else 0
    at = _field(buf, header, hvt, hvt_size, htbl_size, _HDR_SENDER, 4, "sender")
    sender = _string(buf, size, at, "sender") if at else ""
    at = _field(buf, header, hvt, hvt_size, htbl_size, _HDR_TARGET, 4, "target")
    target = _string(buf, size, at, "target") if at else ""
    at = _field(buf, header, hvt, hvt_size, htbl_size, _HDR_TRACE, 32, "trace")
    trace_hi, trace_lo, span_id, trace_flags = _TRACE(buf, at) if at else (0, 0, 0, 0)
    return Envelope(
        values["kind"],
        payload,
        values["codec"],
        values["message_id"],
        values["correlation_id"],
        sender,
        target,
        (trace_hi << 64) | trace_lo,
        span_id,
        trace_flags,
        values["timestamp_ns"],
        values["flags"],
        buffers,
        version,
    )
