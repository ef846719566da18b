"""The two streams of a device session, as state machines with no I/O (the caller passes the time).

The reliable stream is a selective-repeat sliding window, as XRCE's reliable
streams: each DATA frame has a sequence number (u16, wrapping; comparisons
are serial-number arithmetic, RFC 1982). The receiver delivers each message
once and in order, keeps what comes early within its window, drops
duplicates, and answers with an ACKNACK (payload: the first sequence it still
misses, u16, and a u16 bitmap, bit ``i`` set = ``first + i`` is missing
while a later one came; no bit set: nothing came after ``first``). The
sender keeps at most ``window`` frames unacknowledged, forgets those before
``first``, sends again what an ACKNACK says is missing (at most once per
``min_gap``), and what has gone unanswered for ``rto`` seconds. The best-effort stream only numbers its
frames: the receiver takes a frame newer than the last it took and drops an
older one (telemetry: the latest value wins).
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ACKNACK", "MAX_WINDOW", "BestEffortReceiver", "ReliableReceiver", "ReliableSender", "StreamFullError", "newer"]

ACKNACK = struct.Struct("<HH")  # first sequence missing, bitmap of missing ones from it
MAX_WINDOW = 16  # what the bitmap can say


def newer(a: int, b: int) -> bool:
    """Whether sequence ``a`` comes after ``b`` (u16, wrapping)."""
    return 0 < (a - b) & 0xFFFF < 0x8000


class StreamFullError(BufferError):
    """The reliable stream to a device holds as many messages as it may: the device does not take them fast enough."""


@dataclass
class _Unacked:
    seq: int
    message_id: int
    payload: bytes
    sent_at: float
    sends: int = 1


class ReliableSender:
    """Messages in, DATA frames to write out (``(seq, message_id, payload)``), until the receiver has them."""

    def __init__(self, window: int = 8, rto: float = 0.25, queue_max: int = 256, min_gap: float = 0.02) -> None:
        if not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"a reliable window is 1 to {MAX_WINDOW} frames, not {window}")
        self.window, self.rto, self.queue_max, self.min_gap = window, rto, queue_max, min_gap
        self.next_seq = 0
        self.queued: deque[tuple[int, bytes]] = deque()  # not yet sent: the window is full
        self.unacked: dict[int, _Unacked] = {}  # sent, not yet acknowledged, by sequence
        self.retransmitted = 0

    def send(self, message_id: int, payload: bytes) -> None:
        """Queue one message; StreamFullError if ``queue_max`` wait already (the caller tells its caller)."""
        if len(self.queued) >= self.queue_max:
            raise StreamFullError(f"{self.queue_max} messages already wait for the device's window: it is too slow or gone")
        self.queued.append((message_id, payload))

    def poll(self, now: float) -> list[tuple[int, int, bytes]]:
        """What to write now: queued messages the window has room for, and what waited ``rto`` for an answer."""
        out = []
        for entry in self.unacked.values():
            if now - entry.sent_at >= self.rto:
                out.append(self._again(entry, now))
        while self.queued and len(self.unacked) < self.window:
            message_id, payload = self.queued.popleft()
            seq = self.next_seq
            self.next_seq = (seq + 1) & 0xFFFF
            self.unacked[seq] = _Unacked(seq, message_id, payload, now)
            out.append((seq, message_id, payload))
        return out

    def on_acknack(self, payload: bytes, now: float) -> list[tuple[int, int, bytes]]:
        """Take the receiver's ACKNACK; what it says is missing, to write again. ValueError if it is malformed."""
        if len(payload) != ACKNACK.size:
            raise ValueError(f"an ACKNACK payload is {ACKNACK.size} bytes, not {len(payload)}")
        first, missing = ACKNACK.unpack(payload)
        out = []
        for seq in list(self.unacked):
            if newer(first, seq):
                del self.unacked[seq]  # the receiver has everything before ``first``
                continue
            offset = (seq - first) & 0xFFFF
            entry = self.unacked[seq]
            if offset < MAX_WINDOW and missing >> offset & 1 and now - entry.sent_at >= self.min_gap:
                out.append(self._again(entry, now))
        return out

    def _again(self, entry: _Unacked, now: float) -> tuple[int, int, bytes]:
        entry.sent_at = now
        entry.sends += 1
        self.retransmitted += 1
        return (entry.seq, entry.message_id, entry.payload)

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing unacknowledged."""
        return not self.queued and not self.unacked

    def reset(self) -> list[tuple[int, bytes]]:
        """The session starts again: sequence 0; what was not acknowledged is handed back (message id, payload)."""
        lost = [(e.message_id, e.payload) for e in self.unacked.values()] + list(self.queued)
        self.unacked.clear()
        self.queued.clear()
        self.next_seq = 0
        return lost


class ReliableReceiver:
    """DATA frames in, messages out once each and in order; the ACKNACK to answer with."""

    def __init__(self, deliver: Callable[[int, bytes], None], window: int = MAX_WINDOW) -> None:
        if not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"a reliable window is 1 to {MAX_WINDOW} frames, not {window}")
        self.deliver = deliver
        self.window = window
        self.expected = 0  # the first sequence not yet delivered
        self.early: dict[int, tuple[int, bytes]] = {}  # within the window, after a gap
        self.duplicates = 0
        self.out_of_window = 0

    def on_data(self, seq: int, message_id: int, payload: bytes) -> None:
        """Take one DATA frame: deliver it and what waited behind it, keep it if early, drop it if seen."""
        offset = (seq - self.expected) & 0xFFFF
        if offset >= 0x8000 or seq in self.early:  # before what is expected: delivered already
            self.duplicates += 1
            return
        if offset >= self.window:
            self.out_of_window += 1  # (the sender's window is larger than ours, or it is confused: it sends again)
            return
        self.early[seq] = (message_id, payload)
        while self.expected in self.early:
            message_id, payload = self.early.pop(self.expected)
            self.expected = (self.expected + 1) & 0xFFFF
            self.deliver(message_id, payload)

    def acknack(self) -> bytes:
        """The ACKNACK payload for what this receiver has now."""
        missing = 0
        if self.early:
            last = max((seq - self.expected) & 0xFFFF for seq in self.early)
            for offset in range(last):
                if (self.expected + offset) & 0xFFFF not in self.early:
                    missing |= 1 << offset
        return ACKNACK.pack(self.expected, missing)

    def reset(self) -> None:
        self.expected = 0
        self.early.clear()


class BestEffortReceiver:
    """Best-effort DATA frames: one newer than the last taken is taken, an older one dropped (latest wins)."""

    def __init__(self) -> None:
        self.last: int | None = None
        self.stale = 0

    def take(self, seq: int) -> bool:
        if self.last is not None and not newer(seq, self.last):
            self.stale += 1
            return False
        self.last = seq
        return True

    def reset(self) -> None:
        self.last = None
