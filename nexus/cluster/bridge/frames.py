"""Frames on a serial line to a device: COBS-encoded, 0x00-delimited, with a header and a CRC.

A frame, before COBS (all integers little-endian)::

    offset  size  field
    0       1     version: 1
    1       1     type: 1 INIT, 2 ACK, 3 RESET, 4 DATA, 5 ACKNACK, 6 HEARTBEAT
    2       1     flags: bit 0 set = the CRC is CRC-32 (else CRC-16); the other bits are 0
    3       1     stream: 0 best-effort (latest value wins), 1 reliable (in order, once)
    4       2     sequence number (u16, wrapping)
    6       4     message id (u32, from the message-id registry; 0 for none)
    10      2     payload length n (u16)
    12      n     payload (a safe codec: CBOR or a fixed struct, never a pickle)
    12+n    2|4   CRC over bytes 0 .. 12+n-1

CRC-16 is CRC-16/CCITT-FALSE (width 16, poly 0x1021, init 0xFFFF, not
reflected, xorout 0; check value of ``b"123456789"``: 0x29B1), what stdlib
``binascii.crc_hqx(data, 0xFFFF)`` computes. CRC-32 is CRC-32/ISO-HDLC (poly
0x04C11DB7 reflected, init and xorout 0xFFFFFFFF; check value 0xCBF43926),
stdlib ``zlib.crc32``; a sender uses it for frames over :data:`CRC32_OVER`
bytes, where 16 bits detect too little. The frame is then COBS-encoded
(Cheshire and Baker, 1999: no 0x00 inside, at most one byte more per 254) and
ends with one 0x00. A reader that meets garbage throws away what it holds at
the next 0x00 and starts again there (resync); a frame that does not decode,
fails its CRC, names an unknown version or type, or says a length it does not
have is dropped and counted, never raised: input from a device is untrusted.
"""

from __future__ import annotations

import binascii
import enum
import struct
import zlib
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "CRC32_OVER",
    "DEFAULT_MTU",
    "HEADER",
    "VERSION",
    "Frame",
    "FrameReader",
    "FrameType",
    "ReaderStatistics",
    "RejectedFrameError",
    "cobs_decode",
    "cobs_encode",
    "encode_frame",
    "parse_frame",
]

VERSION = 1
HEADER = struct.Struct("<BBBBHIH")  # version, type, flags, stream, sequence, message id, payload length
CRC32_OVER = 256  # header and payload longer than this: CRC-32
FLAG_CRC32 = 0x01
DEFAULT_MTU = 128  # payload bytes a frame carries at most, unless the session says otherwise (a small device's buffers)
MAX_MTU = 0xFFFF
NOISE_KEPT = 1024  # bytes of the latest noise a reader keeps, to show


class FrameType(enum.IntEnum):
    INIT = 1  # a device (re)starts its session: its client key, what it can take
    ACK = 2  # the bridge takes the session
    RESET = 3  # either side: start the session again (streams back to sequence 0)
    DATA = 4  # a message on a stream
    ACKNACK = 5  # a reliable stream's receiver: what it has and what it misses
    HEARTBEAT = 6  # either side: still here


_TYPES = frozenset(int(t) for t in FrameType)


class Frame(NamedTuple):
    type: FrameType
    stream: int
    seq: int
    message_id: int
    payload: bytes


class RejectedFrameError(ValueError):
    """A frame that cannot be taken; ``reason`` names the counter it goes under."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def cobs_encode(data: bytes) -> bytes:
    """``data`` with no 0x00 left in it (COBS); the delimiter is not added.

    Each run between zeros goes as its length plus one, then its bytes (the
    zero after it implied); a run of 254 or more goes in blocks of 254 under
    the code 0xFF, which implies no zero. Output as in the examples of the
    paper and of the usual C encoders (tests/bridge/test_frames.py has them).
    """
    out = bytearray()
    for run in data.split(b"\x00"):
        view = memoryview(run)
        while len(view) >= 254:
            out.append(0xFF)
            out += view[:254]
            view = view[254:]
        out.append(len(view) + 1)
        out += view
    if run and len(run) % 254 == 0:  # the last run ended a full block: no empty block after it (the usual form)
        del out[-1]
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """The bytes ``data`` encodes (COBS); ValueError if it is not a COBS encoding."""
    out = bytearray()
    i = 0
    size = len(data)
    while i < size:
        code = data[i]
        if code == 0:
            raise ValueError(f"a zero byte at {i} inside a COBS block")
        end = i + code
        if end > size:
            raise ValueError(f"a COBS block of {code - 1} bytes at {i} runs past the end ({size} bytes)")
        block = data[i + 1 : end]
        if 0 in block:
            raise ValueError(f"a zero byte inside the COBS block at {i}")
        out += block
        i = end
        if code != 255 and i < size:
            out.append(0)
    return bytes(out)


def _crc(body: bytes, crc32: bool) -> bytes:
    if crc32:
        return struct.pack("<I", zlib.crc32(body))
    return struct.pack("<H", binascii.crc_hqx(body, 0xFFFF))


def encode_frame(kind: FrameType, stream: int, seq: int, message_id: int, payload: bytes = b"", *, mtu: int = MAX_MTU) -> bytes:
    """One frame, COBS-encoded and ending with its 0x00 delimiter, ready to write to the line."""
    if len(payload) > mtu:
        raise ValueError(f"a payload of {len(payload)} bytes is over the link's MTU of {mtu}: send it in smaller messages")
    if not 0 <= stream <= 0xFF or not 0 <= seq <= 0xFFFF or not 0 <= message_id <= 0xFFFF_FFFF:
        raise ValueError(f"stream {stream}, sequence {seq} or message id {message_id} is out of range (u8, u16, u32)")
    crc32 = HEADER.size + len(payload) > CRC32_OVER
    body = HEADER.pack(VERSION, int(kind), FLAG_CRC32 if crc32 else 0, stream, seq, message_id, len(payload)) + payload
    return cobs_encode(body + _crc(body, crc32)) + b"\x00"


def parse_frame(raw: bytes) -> Frame:
    """The frame in ``raw`` (one COBS block, its delimiter taken off); :class:`RejectedFrameError` says why not."""
    try:
        data = cobs_decode(raw)
    except ValueError as exc:
        raise RejectedFrameError("cobs", str(exc)) from None
    if len(data) < HEADER.size + 2:
        raise RejectedFrameError("short", f"{len(data)} bytes, less than a header and a CRC")
    version, kind, flags, stream, seq, message_id, length = HEADER.unpack_from(data)
    crc32 = bool(flags & FLAG_CRC32)
    end = HEADER.size + length
    if len(data) != end + (4 if crc32 else 2):
        raise RejectedFrameError("length", f"the header says {length} payload bytes, the frame has {len(data) - HEADER.size} with its CRC")
    if _crc(data[:end], crc32) != data[end:]:
        raise RejectedFrameError("crc", "the CRC does not match")
    if version != VERSION:
        raise RejectedFrameError("version", f"version {version}, this bridge speaks {VERSION}")
    if kind not in _TYPES or flags & ~FLAG_CRC32:
        raise RejectedFrameError("type", f"frame type {kind}, flags {flags:#x}")
    return Frame(FrameType(kind), stream, seq, message_id, data[HEADER.size : end])


@dataclass(frozen=True)
class ReaderStatistics:
    frames: int  # taken
    cobs: int  # not a COBS encoding
    short: int  # shorter than a header and a CRC
    length: int  # the header's length is not the frame's
    crc: int
    version: int
    type: int
    oversize: int  # longer than the MTU allows (a run with no delimiter for that long: skipped to the next one)
    noise: int  # bytes thrown away (in rejected frames and oversize runs)

    @property
    def rejected(self) -> int:
        return self.cobs + self.short + self.length + self.crc + self.version + self.type + self.oversize


class FrameReader:
    """Bytes from the line in, frames out; resyncs at each 0x00 and counts what it rejects (it never raises)."""

    def __init__(self, mtu: int = DEFAULT_MTU) -> None:
        if not 0 < mtu <= MAX_MTU:
            raise ValueError(f"an MTU is 1 to {MAX_MTU} payload bytes, not {mtu}")
        self.mtu = mtu
        largest = HEADER.size + mtu + 4
        self.limit = largest + largest // 254 + 1  # the longest COBS encoding of a frame this reader takes
        self.buffer = bytearray()
        self.skipping = False  # inside a run longer than the limit: everything up to the next delimiter goes
        self.counts = dict.fromkeys(("frames", "cobs", "short", "length", "crc", "version", "type", "oversize", "noise"), 0)
        self.noise_tail = bytearray()  # the last bytes thrown away (a device's console text says what went wrong)

    def _noise(self, data: bytes | bytearray) -> None:
        self.counts["noise"] += len(data)
        self.noise_tail += data[-NOISE_KEPT:]
        del self.noise_tail[:-NOISE_KEPT]

    def feed(self, data: bytes) -> list[Frame]:
        """The frames that ``data`` completes, in order."""
        frames = []
        start = 0
        counts = self.counts
        while start <= len(data):
            end = data.find(0, start)
            piece = data[start:] if end < 0 else data[start:end]
            if self.skipping:
                self._noise(piece)
            else:
                self.buffer += piece
                if len(self.buffer) > self.limit:
                    counts["oversize"] += 1
                    self._noise(self.buffer)
                    self.buffer.clear()
                    self.skipping = True
            if end < 0:
                break
            if self.skipping:
                self.skipping = False
            elif self.buffer:  # (empty between two delimiters: a sender's resync, nothing to count)
                raw = bytes(self.buffer)
                self.buffer.clear()
                try:
                    frame = parse_frame(raw)
                    if len(frame.payload) > self.mtu:
                        raise RejectedFrameError("oversize", f"a payload of {len(frame.payload)} bytes, over the MTU of {self.mtu}")
                    frames.append(frame)
                    counts["frames"] += 1
                except RejectedFrameError as exc:
                    counts[exc.reason] += 1
                    self._noise(raw)
            start = end + 1
        return frames

    def statistics(self) -> ReaderStatistics:
        return ReaderStatistics(**self.counts)
