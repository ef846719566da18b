"""The serial-line frame format: COBS, the CRCs, the header, and a reader that resyncs after any damage."""

from __future__ import annotations

import binascii
import random
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.cluster.bridge.frames import (
    CRC32_OVER,
    HEADER,
    Frame,
    FrameReader,
    FrameType,
    RejectedFrameError,
    cobs_decode,
    cobs_encode,
    encode_frame,
    parse_frame,
)

# The examples of the COBS article (Cheshire and Baker) as the usual encoders give them.
COBS_EXAMPLES = [
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
]


@pytest.mark.parametrize(("plain", "encoded"), COBS_EXAMPLES)
def test_cobs_gives_the_published_examples(plain: bytes, encoded: bytes) -> None:
    assert cobs_encode(plain) == encoded
    assert cobs_decode(encoded) == plain


@given(st.binary(max_size=2000))
def test_cobs_round_trips_and_leaves_no_zero(data: bytes) -> None:
    encoded = cobs_encode(data)
    assert 0 not in encoded
    assert len(encoded) <= len(data) + len(data) // 254 + 1
    assert cobs_decode(encoded) == data


def test_the_crc_parameters_are_the_ones_written_down() -> None:
    assert binascii.crc_hqx(b"123456789", 0xFFFF) == 0x29B1  # CRC-16/CCITT-FALSE
    assert zlib.crc32(b"123456789") == 0xCBF43926  # CRC-32/ISO-HDLC


@pytest.mark.parametrize("size", [0, 1, 100, CRC32_OVER - HEADER.size, CRC32_OVER - HEADER.size + 1, 4000])
def test_a_frame_round_trips_with_the_crc_its_size_calls_for(size: int) -> None:
    payload = bytes(random.Random(size).randrange(256) for _ in range(size))
    wire = encode_frame(FrameType.DATA, 1, 0xFFFF, 0xDEADBEEF, payload)
    assert wire.endswith(b"\x00") and 0 not in wire[:-1]
    raw = cobs_decode(wire[:-1])
    assert raw[2] == (1 if HEADER.size + size > CRC32_OVER else 0), "the flag says which CRC"
    assert len(raw) == HEADER.size + size + (4 if HEADER.size + size > CRC32_OVER else 2)
    assert parse_frame(wire[:-1]) == Frame(FrameType.DATA, 1, 0xFFFF, 0xDEADBEEF, payload)


def test_what_cannot_be_framed_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="over the link's MTU of 64"):
        encode_frame(FrameType.DATA, 0, 0, 1, b"x" * 65, mtu=64)
    with pytest.raises(ValueError, match="out of range"):
        encode_frame(FrameType.DATA, 0, 0x10000, 1)
    with pytest.raises(ValueError, match="MTU is 1 to"):
        FrameReader(mtu=0)


def test_each_kind_of_damage_is_rejected_under_its_own_reason() -> None:
    good = cobs_decode(encode_frame(FrameType.HEARTBEAT, 0, 7, 0)[:-1])

    def reason(raw: bytes) -> str:
        with pytest.raises(RejectedFrameError) as caught:
            parse_frame(raw)
        return caught.value.reason

    def reframed(body: bytes) -> bytes:  # a frame whose CRC is right for what it says
        return cobs_encode(body + binascii.crc_hqx(body, 0xFFFF).to_bytes(2, "little"))

    flipped = bytearray(good)
    flipped[5] ^= 0x10
    assert reason(cobs_encode(bytes(flipped))) == "crc"
    assert reason(b"\x05\x01\x02") == "cobs"  # a block that runs past the end
    assert reason(cobs_encode(good[:8])) == "short"
    assert reason(cobs_encode(good + b"\x01")) == "length"
    assert reason(reframed(bytes([2]) + good[1:-2])) == "version"
    assert reason(reframed(good[:1] + bytes([99]) + good[2:-2])) == "type"
    assert reason(reframed(good[:2] + bytes([0x80]) + good[3:-2])) == "type"  # an unknown flag


def _frames(count: int, rng: random.Random) -> list[Frame]:
    return [
        Frame(
            FrameType.DATA,
            rng.randrange(2),
            i & 0xFFFF,
            rng.randrange(1 << 32),
            bytes(rng.randrange(256) for _ in range(rng.randrange(60))),
        )
        for i in range(count)
    ]


def test_noise_between_frames_and_split_reads_lose_nothing() -> None:
    rng = random.Random(1)
    frames = _frames(200, rng)
    line = bytearray()
    for frame in frames:
        line += bytes(rng.randrange(1, 256) for _ in range(rng.randrange(3))) + b"\x00"  # noise, ended by a delimiter
        line += encode_frame(*frame)
    reader = FrameReader(mtu=64)
    got: list[Frame] = []
    at = 0
    while at < len(line):  # the line as a serial port gives it: in pieces of any size
        step = rng.randrange(1, 40)
        got += reader.feed(bytes(line[at : at + step]))
        at += step
    assert got == frames
    assert reader.statistics().frames == 200


@settings(max_examples=60, deadline=None, derandomize=True)  # (fixed cases: a CRC-16 misses 1 in 65,536 damaged frames)
@given(st.integers(0, 2**32 - 1))
def test_after_any_damage_the_reader_takes_every_intact_frame_and_nothing_false(seed: int) -> None:
    rng = random.Random(seed)
    frames = _frames(40, rng)
    damaged: set[int] = set()
    line = bytearray()
    for i, frame in enumerate(frames):
        wire = bytearray(encode_frame(*frame))
        what = rng.randrange(6)
        if what == 0:  # a bit flipped
            wire[rng.randrange(len(wire) - 1)] ^= 1 << rng.randrange(8)
        elif what == 1:  # a byte dropped
            del wire[rng.randrange(len(wire) - 1)]
        elif what == 2:  # a byte inserted
            wire.insert(rng.randrange(len(wire)), rng.randrange(256))
        if what <= 2:
            damaged.add(i)
        line += wire
    reader = FrameReader(mtu=64)
    got = reader.feed(bytes(line))
    intact = [f for i, f in enumerate(frames) if i not in damaged]
    assert [f for f in got if f in intact] == intact, "every intact frame, in order"
    assert all(f in frames for f in got), "nothing the sender did not send (a damaged frame that still checks would be a CRC miss)"
    stats = reader.statistics()
    assert stats.frames == len(got) and stats.frames + stats.rejected >= len(frames) - len(damaged)


def test_a_run_longer_than_the_mtu_allows_is_skipped_to_the_next_delimiter() -> None:
    reader = FrameReader(mtu=32)
    frame = Frame(FrameType.DATA, 1, 3, 9, b"ok")
    assert reader.feed(b"\x01" * 5000) == []  # no delimiter for a long time: nothing is kept of it
    assert len(reader.buffer) == 0 and reader.skipping
    assert reader.feed(b"\x02" * 100 + b"\x00" + encode_frame(*frame)) == [frame]
    stats = reader.statistics()
    assert stats.oversize == 1 and stats.noise == 5100
    assert reader.feed(encode_frame(FrameType.DATA, 1, 4, 9, b"y" * 33)) == [], "over the MTU"
    assert reader.statistics().oversize == 2
