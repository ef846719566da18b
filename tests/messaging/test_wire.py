"""A link's policy: trusted or safe codecs, maximum size, message ids, out-of-band frames."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from nexus.messaging import (
    SAFE_CODECS,
    BufferRef,
    CodecId,
    DeserializationError,
    Envelope,
    EnvelopeError,
    ForbiddenCodecError,
    Kind,
    LinkPolicy,
    MessageIdTable,
    SerializationError,
    UnknownMessageIdError,
    Wire,
    decode_envelope,
    encode_envelope,
)

EXPLOITED: list[str] = []


def _exploit(note: str) -> None:
    EXPLOITED.append(note)


class Malicious:
    """Unpickling this runs code: what a hostile peer would send."""

    def __reduce__(self) -> tuple[object, ...]:
        return _exploit, ("ran code on load",)


@dataclasses.dataclass
class Telemetry:
    device: str
    volts: float


def test_trusted_link_round_trip_with_metadata() -> None:
    wire = Wire(LinkPolicy.trusted_link())
    data, frames = wire.encode(
        ("call", 1, {"k": "v"}),
        kind=Kind.ASK,
        target="nexus://w/user/a",
        sender="nexus://d/user/b",
        correlation_id=9,
        trace_id=5,
        span_id=6,
        trace_flags=1,
    )
    assert frames == []
    envelope, body = wire.decode(data)
    assert body == ("call", 1, {"k": "v"})
    assert (envelope.kind, envelope.codec, envelope.correlation_id, envelope.target) == (Kind.ASK, CodecId.PICKLE, 9, "nexus://w/user/a")
    assert (envelope.trace_id, envelope.span_id, envelope.trace_flags) == (5, 6, 1)
    assert envelope.timestamp_ns > 1_600_000_000 * 10**9


def test_untrusted_link_rejects_pickle_before_reading_a_byte_of_the_payload() -> None:
    EXPLOITED.clear()
    hostile, _ = Wire(LinkPolicy.trusted_link()).encode(Malicious())
    for policy in (LinkPolicy(), LinkPolicy.safe_link()):
        with pytest.raises(ForbiddenCodecError, match="runs code when loading and this link is not trusted"):
            Wire(policy).decode(hostile)
    cloud = encode_envelope(Envelope(payload=pickle.dumps(Malicious()), codec=CodecId.CLOUDPICKLE))
    with pytest.raises(ForbiddenCodecError, match="cloudpickle"):
        Wire().decode(cloud)
    assert EXPLOITED == [], "the payload was never unpickled"
    # the same bytes on a trusted link do run (which is why only our own processes are trusted)
    Wire(LinkPolicy.trusted_link()).decode(hostile)
    assert EXPLOITED == ["ran code on load"]


def test_untrusted_link_does_not_send_pickle_either() -> None:
    with pytest.raises(ForbiddenCodecError, match="pickle"):
        Wire().encode({"a": 1}, codec=CodecId.PICKLE)


def test_safe_link_speaks_cbor_by_default_and_every_safe_codec() -> None:
    wire = Wire(LinkPolicy.safe_link())
    assert wire.default_codec == CodecId.CBOR
    data, _ = wire.encode({"temp": 21.5})
    assert wire.decode(data)[1] == {"temp": 21.5}
    for codec, body in [(CodecId.JSON, [1, "two"]), (CodecId.RAW, b"\x00raw"), (CodecId.CBOR, {"b": b"\x01"})]:
        assert wire.decode(wire.encode(body, codec=codec)[0])[1] == body
    assert SAFE_CODECS == {CodecId.RAW, CodecId.FLATBUFFERS, CodecId.CBOR, CodecId.JSON}


def test_a_link_can_restrict_itself_further() -> None:
    wire = Wire(LinkPolicy(codecs=frozenset({CodecId.JSON})))
    assert wire.default_codec == CodecId.JSON
    cbor, _ = Wire(LinkPolicy.safe_link()).encode({"a": 1}, codec=CodecId.CBOR)
    with pytest.raises(ForbiddenCodecError, match="restricts itself to other codecs"):
        wire.decode(cbor)
    with pytest.raises(ValueError, match="allow it only on a trusted link"):
        Wire(LinkPolicy(codecs=frozenset({CodecId.PICKLE})))
    with pytest.raises(ValueError, match="not registered"):
        Wire(LinkPolicy(codecs=frozenset({99})))
    with pytest.raises(ValueError, match="not allowed on this link"):
        Wire(LinkPolicy(default_codec=CodecId.PICKLE))
    with pytest.raises(ValueError, match="at least 136"):
        LinkPolicy(max_envelope_size=10)


def test_unknown_codec_is_rejected() -> None:
    data = encode_envelope(Envelope(payload=b"x", codec=200))
    with pytest.raises(ForbiddenCodecError, match="no serializer is registered"):
        Wire(LinkPolicy.trusted_link()).decode(data)


def test_maximum_envelope_size_of_the_link() -> None:
    wire = Wire(LinkPolicy.trusted_link(max_envelope_size=4096))
    with pytest.raises(EnvelopeError, match="exceeds the maximum of 4096"):
        wire.encode(b"x" * 5000, codec=CodecId.RAW)
    big, _ = Wire(LinkPolicy.trusted_link()).encode(b"x" * 5000, codec=CodecId.RAW)
    with pytest.raises(EnvelopeError, match="exceeds the maximum of 4096"):
        wire.decode(big)


def test_numpy_array_goes_out_of_band_as_frames() -> None:
    wire = Wire(LinkPolicy.trusted_link())
    array = np.arange(100_000, dtype=np.float64).reshape(100, 1000)
    data, frames = wire.encode({"x": array})
    assert len(data) < 512 and len(frames) == 1 and frames[0].nbytes == array.nbytes
    envelope = decode_envelope(data)
    assert envelope.buffers == (BufferRef(0, 0, array.nbytes),)
    _, body = wire.decode(data, [f.toreadonly() for f in frames])
    assert np.array_equal(body["x"], array) and body["x"].shape == (100, 1000)
    assert body["x"].__array_interface__["data"][0] == array.__array_interface__["data"][0]
    # in band when asked
    data, frames = wire.encode({"x": array}, out_of_band=False)
    assert frames == [] and len(data) > array.nbytes


def test_frames_must_match_the_envelope() -> None:
    wire = Wire(LinkPolicy.trusted_link())
    data, frames = wire.encode(np.zeros(10_000))
    with pytest.raises(EnvelopeError, match="refers to frame 0, but only 0 arrived"):
        wire.decode(data)
    with pytest.raises(EnvelopeError, match="holds 3 bytes, the envelope says 80000"):
        wire.decode(data, [b"abc"])
    safe = encode_envelope(Envelope(payload=b"\xa0", codec=CodecId.CBOR, buffers=(BufferRef(0, 0, 1),)))
    with pytest.raises(EnvelopeError, match="takes no out-of-band buffers"):
        Wire().decode(safe, [b"x"])


def test_shared_memory_buffers_go_through_place_and_resolve() -> None:
    arena: dict[int, memoryview] = {}

    def place(view: memoryview) -> BufferRef:
        arena[len(arena) + 1] = view
        return BufferRef(7, len(arena), view.nbytes)

    def resolve(ref: BufferRef) -> memoryview:
        assert ref.segment == 7
        return arena[ref.offset]

    sender = Wire(LinkPolicy.trusted_link(), place_buffer=place)
    receiver = Wire(LinkPolicy.trusted_link(), resolve_buffer=resolve)
    array = np.ones(50_000)
    data, frames = sender.encode(array)
    assert frames == [] and decode_envelope(data).buffers == (BufferRef(7, 1, array.nbytes),)
    assert np.array_equal(receiver.decode(data)[1], array)
    with pytest.raises(EnvelopeError, match="no object store"):
        Wire(LinkPolicy.trusted_link()).decode(data)


def test_message_ids_name_types_across_a_safe_link() -> None:
    ids = MessageIdTable()
    ids.register(Telemetry, 0x4000)
    device = Wire(LinkPolicy.safe_link(), message_ids=ids)
    data, _ = device.encode(Telemetry("probe-1", 3.3))
    envelope, body = device.decode(data)
    assert envelope.message_id == 0x4000 and body == Telemetry("probe-1", 3.3)
    stranger = Wire(LinkPolicy.safe_link(), message_ids=MessageIdTable())
    with pytest.raises(UnknownMessageIdError, match="0x00004000"):
        stranger.decode(data)
    with pytest.raises(UnknownMessageIdError):
        stranger.decode_envelope(data)


def test_payload_that_does_not_decode_is_a_deserialization_error() -> None:
    bad = encode_envelope(Envelope(payload=b"{not json", codec=CodecId.JSON))
    with pytest.raises(DeserializationError, match="codec json\\) does not decode: JSONDecodeError") as info:
        Wire().decode(bad)
    assert isinstance(info.value, EnvelopeError)
    truncated = encode_envelope(Envelope(payload=pickle.dumps({"a": 1})[:-3], codec=CodecId.PICKLE))
    with pytest.raises(DeserializationError):
        Wire(LinkPolicy.trusted_link()).decode(truncated)


def test_no_payload_codec() -> None:
    wire = Wire()
    data, _ = wire.encode(None, codec=CodecId.NONE, kind=Kind.HEARTBEAT)
    envelope, body = wire.decode(data)
    assert body is None and envelope.kind == Kind.HEARTBEAT and envelope.payload == b""
    with pytest.raises(SerializationError, match="carries no payload"):
        wire.encode(1, codec=CodecId.NONE)


def test_unserializable_body_is_named() -> None:
    import threading

    with pytest.raises(SerializationError, match="lock"):
        Wire(LinkPolicy.trusted_link()).encode({"bad": threading.Lock()})
    with pytest.raises(SerializationError, match="not JSON serializable"):
        Wire(LinkPolicy.safe_link()).encode(object(), codec=CodecId.JSON)


def test_buffers_are_not_resolved_for_a_codec_without_them_and_resolver_errors_are_envelope_errors() -> None:
    calls: list[BufferRef] = []

    def resolve(ref: BufferRef) -> bytes:
        calls.append(ref)
        raise KeyError(ref.segment)

    wire = Wire(LinkPolicy.safe_link(), resolve_buffer=resolve)
    listed = encode_envelope(Envelope(payload=b"[]", codec=CodecId.JSON, buffers=tuple(BufferRef(9, i, 1) for i in range(50))))
    with pytest.raises(EnvelopeError, match="takes no out-of-band buffers"):
        wire.decode(listed)
    assert calls == []
    trusted = Wire(LinkPolicy.trusted_link(), resolve_buffer=resolve)
    data = encode_envelope(Envelope(payload=pickle.dumps(1), codec=CodecId.PICKLE, buffers=(BufferRef(9, 0, 1),)))
    with pytest.raises(EnvelopeError, match="cannot be resolved: KeyError"):
        trusted.decode(data)


def test_safe_link_can_narrow_and_picks_a_structured_default() -> None:
    assert Wire(LinkPolicy.safe_link(codecs=frozenset({CodecId.CBOR}))).default_codec == CodecId.CBOR
    assert Wire(LinkPolicy(codecs=frozenset({CodecId.RAW, CodecId.JSON}))).default_codec == CodecId.JSON
    from nexus.messaging import JsonSerializer, RawSerializer, SerializerRegistry

    assert Wire(LinkPolicy.safe_link(), registry=SerializerRegistry([RawSerializer(), JsonSerializer()])).default_codec == CodecId.JSON
    with pytest.raises(ValueError, match="allows no codec"):
        Wire(LinkPolicy.safe_link(), registry=SerializerRegistry([]))


def test_codec_none_with_a_payload_is_rejected() -> None:
    with pytest.raises(EnvelopeError, match="carries no payload"):
        Wire().decode(encode_envelope(Envelope(payload=b"smuggled", codec=CodecId.NONE)))


def test_cbor_and_flatbuffers_payloads_from_an_untrusted_peer_are_bounded() -> None:
    import re
    import time

    import cbor2

    hostile = encode_envelope(Envelope(payload=cbor2.dumps(re.compile("(?i)" * 5000 + "a")), codec=CodecId.CBOR))
    start = time.perf_counter()
    with pytest.raises(DeserializationError, match="tag 35"):
        Wire(LinkPolicy.safe_link()).decode(hostile)
    assert time.perf_counter() - start < 5, "refused unread, not worked through"  # a hang guard, not a measurement
