"""The shared-memory ring transport: the default between processes of one host.

A channel is one shared-memory segment holding two single-producer /
single-consumer rings, one per direction, and two eventfds for wake-ups.
A receiver spins on its ring for a short while, then parks on its eventfd;
a sender writes the record, publishes the new tail, and writes the eventfd
only when the receiver announced that it sleeps -- so a busy pair exchanges
messages without a single system call, and an idle one costs nothing.

Ring layout (positions are byte counts that only grow; offsets are them
modulo the capacity): a 256-byte header -- head (consumer), tail (producer),
the consumer's sleeping flag and a closed flag, each on its own cache line --
then the data. A record is ``u32 data length, u32 frame count, u32 length per
frame``, padded to 8, then the data and the frames; a length of 0xFFFFFFFF
marks a jump back to offset 0.

Memory ordering: positions are written with aligned 8-byte stores (memoryview
items, not byte loops), readers never see a torn value; on x86 (TSO) stores
are seen in program order. The sleep handshake (consumer: set flag, then read
tail; producer: write tail, then read flag) needs a store-load barrier on both
sides, which an uncontended lock acquire/release provides.
"""

from __future__ import annotations

import contextlib
import os
import select
import struct
import threading
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from nexus.cluster.shm_util import attach_segment, create_segment, unlink_segment
from nexus.cluster.transport import ChannelCorruptError, ChannelSpec, Connection, Message, Transport, TransportClosedError

__all__ = ["ShmRingTransport"]

HEADER = 256
HEAD, TAIL, SLEEPING, CLOSED = 0, 8, 16, 24  # indexes into the header viewed as u64
WRAP = 0xFFFF_FFFF
DEFAULT_CAPACITY = 8 << 20
_REC = struct.Struct("<II")
MAX_FRAMES = 4096
"""Most frames (out-of-band buffers) one record may have; a header saying more is corrupt."""

_fence_lock = threading.Lock()


def _fence() -> None:
    """A full memory barrier: an uncontended lock round trip is a locked instruction on x86."""
    _fence_lock.acquire()
    _fence_lock.release()


class _Ring:
    """One direction of a channel: ``capacity`` bytes of data after a 256-byte header."""

    def __init__(self, buf: memoryview, capacity: int) -> None:
        self.buf = buf
        self.capacity = capacity
        self.words = buf[:HEADER].cast("Q")
        self.data = buf[HEADER : HEADER + capacity]

    def release(self) -> None:
        self.words.release()
        self.data.release()
        self.buf.release()


class ShmConnection(Connection):
    def __init__(
        self,
        segment: Any,
        out_ring: _Ring,
        in_ring: _Ring,
        wake_out: int,
        wake_in: int,
        owner: bool,
    ) -> None:
        self._segment = segment
        self._out = out_ring
        self._in = in_ring
        self._wake_out = wake_out
        self._wake_in = wake_in
        self._owner = owner
        self._send_lock = threading.Lock()
        self._closed = False
        self.max_message = out_ring.capacity // 2 - 64
        self.sent = 0
        self.received = 0
        self.wakeups_sent = 0
        self.corrupt = 0
        self._broken: ChannelCorruptError | None = None  # set once a record did not fit: nothing is read after it

    # -- sending ----------------------------------------------------------------

    def send(self, data: bytes, frames: Sequence[Any] = ()) -> None:
        self._send(data, frames, True)

    def try_send(self, data: bytes, frames: Sequence[Any] = ()) -> bool:
        return self._send(data, frames, False)

    def _send(self, data: bytes, frames: Sequence[Any], wait: bool) -> bool:
        lengths = [memoryview(f).nbytes for f in frames]
        head_size = 8 + 4 * len(lengths)
        head_size += (-head_size) & 7
        size = head_size + len(data) + sum(lengths)
        size += (-size) & 7
        if len(lengths) > MAX_FRAMES:
            raise ValueError(f"a message has at most {MAX_FRAMES} frames, not {len(lengths)}")
        if size > self.max_message:
            raise ValueError(f"message of {size} bytes exceeds this channel's limit of {self.max_message}; send large data out of band")
        ring = self._out
        words = ring.words
        cap = ring.capacity
        with self._send_lock:
            tail = words[TAIL]
            offset = tail % cap
            need = size if offset + size <= cap else size + (cap - offset)
            if cap - (tail - words[HEAD]) < need:
                if not wait:
                    if self._closed or words[CLOSED]:
                        raise TransportClosedError("the channel is closed")
                    return False
                self._wait_for_space(need)
            if offset + size > cap:  # no room before the end: mark the jump, start again at 0
                _REC.pack_into(ring.data, offset, WRAP, 0)
                tail += cap - offset
                offset = 0
            mv = ring.data
            _REC.pack_into(mv, offset, len(data), len(lengths))
            if lengths:
                struct.pack_into(f"<{len(lengths)}I", mv, offset + 8, *lengths)
            pos = offset + head_size
            mv[pos : pos + len(data)] = data
            pos += len(data)
            for frame, n in zip(frames, lengths, strict=True):
                mv[pos : pos + n] = memoryview(frame).cast("B")
                pos += n
            words[TAIL] = tail + size
            self.sent += 1
        _fence()
        if words[SLEEPING]:
            self.wakeups_sent += 1
            try:
                os.eventfd_write(self._wake_out, 1)
            except OSError:
                pass
        return True

    def _wait_for_space(self, need: int) -> None:
        words = self._out.words
        delay = 1e-5
        while self._out.capacity - (words[TAIL] - words[HEAD]) < need:
            if self._closed or words[CLOSED]:
                raise TransportClosedError("the channel is closed")
            alive = self.peer_alive
            if alive is not None and delay >= 1e-3 and not alive():
                raise TransportClosedError("the peer is gone and its ring is full")
            time.sleep(delay)
            delay = min(delay * 2, 1e-3)

    # -- receiving --------------------------------------------------------------

    def try_recv(self) -> Message | None:
        ring = self._in
        words = ring.words
        head = words[HEAD]
        tail = words[TAIL]
        if head == tail:
            return None
        if self._broken is not None:
            raise self._broken
        cap = ring.capacity
        mv = ring.data
        # Nothing the peer wrote is trusted: every position and length is checked against the ring before use
        # (a record that does not fit means the ring's state is lost: the channel is dropped, never read on).
        avail = tail - head
        if avail < 8 or avail > cap or head & 7:
            return self._corrupt(f"positions head={head} tail={tail} do not fit a ring of {cap} bytes")
        offset = head % cap
        length, nframes = _REC.unpack_from(mv, offset)
        if length == WRAP:
            skip = cap - offset
            if skip + 8 > avail:
                return self._corrupt(f"a jump at {offset} leaves no record before the tail")
            head += skip
            avail -= skip
            offset = 0
            length, nframes = _REC.unpack_from(mv, 0)
        head_size = 8 + 4 * nframes
        head_size += (-head_size) & 7
        if nframes > MAX_FRAMES or head_size + length > avail:
            return self._corrupt(f"a record of {length} bytes and {nframes} frames at {offset}, {avail} bytes written")
        lengths = struct.unpack_from(f"<{nframes}I", mv, offset + 8) if nframes else ()
        size = head_size + length + sum(lengths)
        size += (-size) & 7
        if size > avail or offset + size > cap:
            return self._corrupt(f"a record of {size} bytes at {offset}, {avail} bytes written")
        pos = offset + head_size
        data = bytes(mv[pos : pos + length])
        pos += length
        frames = []
        for n in lengths:
            frames.append(bytes(mv[pos : pos + n]))
            pos += n
        words[HEAD] = head + size
        self.received += 1
        return data, frames

    def _corrupt(self, what: str) -> NoReturn:
        self._broken = ChannelCorruptError(f"the peer's ring is corrupt ({what}); the channel cannot be read any more")
        self.corrupt += 1
        raise self._broken

    def fileno(self) -> int:
        return self._wake_in

    def park_begin(self) -> bool:
        words = self._in.words
        words[SLEEPING] = 1
        _fence()
        if words[HEAD] != words[TAIL]:
            words[SLEEPING] = 0
            return False
        return True

    def park_end(self) -> None:
        self._in.words[SLEEPING] = 0
        try:
            os.eventfd_read(self._wake_in)
        except (BlockingIOError, OSError):
            pass

    def wait(self, timeout: float | None) -> bool:
        """Block until a message may be waiting (or ``timeout``); for a single-connection receiver."""
        if not self.park_begin():
            return True
        try:
            ready, _, _ = select.select([self._wake_in], [], [], timeout)
        finally:
            self.park_end()
        return bool(ready)

    @property
    def stats(self) -> dict[str, int]:
        return {"sent": self.sent, "received": self.received, "wakeups_sent": self.wakeups_sent, "corrupt": self.corrupt}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._out.words[CLOSED] = 1
            self._in.words[CLOSED] = 1
        except (ValueError, TypeError):
            pass
        for fd in (self._wake_out,):
            try:
                os.eventfd_write(fd, 1)  # wake a parked peer so it sees the close
            except OSError:
                pass
        self._out.release()
        self._in.release()
        for fd in (self._wake_in, self._wake_out):
            try:
                os.close(fd)
            except OSError:
                pass
        self._segment.buf.release()
        with contextlib.suppress(BufferError):
            self._segment.map.close()
        if self._owner:
            unlink_segment(self._segment.name)

    @property
    def peer_closed(self) -> bool:
        return bool(self._in.words[CLOSED]) if not self._closed else True


def _rings(buf: memoryview, capacity: int) -> tuple[_Ring, _Ring]:
    size = HEADER + capacity
    return _Ring(buf[:size], capacity), _Ring(buf[size : 2 * size], capacity)  # slices of the segment's view


class ShmRingTransport(Transport):
    """Two shared-memory rings per channel, eventfd wake-ups; processes of one host only."""

    name = "shm"

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity & (capacity - 1) or capacity < 4096:
            raise ValueError(f"ring capacity must be a power of two >= 4096, not {capacity}")
        self.capacity = capacity

    @classmethod
    def sized(cls, channel_bytes: int) -> ShmRingTransport:
        return cls(channel_bytes)

    def open_channel(self, label: str) -> tuple[Connection, ChannelSpec]:
        segment = create_segment(f"ch-{label}", 2 * (HEADER + self.capacity))
        down, up = _rings(segment.buf, self.capacity)  # down: driver -> child, up: child -> driver
        wake_child = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        wake_driver = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        conn = ShmConnection(segment, down, up, wake_child, wake_driver, owner=True)
        spec = ChannelSpec(self.name, f"{segment.name}:{self.capacity}:{wake_child}:{wake_driver}", (wake_child, wake_driver))
        return conn, spec

    @classmethod
    def attach(cls, spec: ChannelSpec) -> Connection:
        name, capacity, wake_child, wake_driver = spec.address.split(":")
        segment = attach_segment(name)
        down, up = _rings(segment.buf, int(capacity))
        return ShmConnection(segment, up, down, int(wake_driver), int(wake_child), owner=False)
