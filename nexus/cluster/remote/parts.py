"""Large data messages between hosts go as parts, so that a link never falls silent while one crosses it.

ZeroMQ hands over a message (and a frame) only once all of it has arrived:
a 1 GiB value at a few hundred MB/s would leave the receiver hearing
nothing from its peer for seconds, and both ends would declare the other
dead. So a data message (``[b"D", envelope, *buffers]``) of more than
``PART_BYTES`` goes as messages of about that size, each frame larger than
that cut into pieces (views, not copies): ``[b"L", layout, *pieces]``
first, ``[b"P", *pieces]`` next, ``[b"D", *pieces]`` last. The layout
names the size of each frame of the whole message. The parts travel in
order on one connection; the receiver (:class:`Parts`) puts the pieces of
a cut frame together as they come (one copy, a part at a time, so the
thread that receives goes on hearing beats between parts), and each part
counts as hearing from the peer. What does not add up to the layout (a part
lost when a send failed, a peer that lies) drops that message, and only it.
"""

from __future__ import annotations

import os
from array import array
from typing import Any

__all__ = ["DATA", "LAYOUT", "PART", "PART_BYTES", "Joined", "Parts", "split"]

DATA = b"D"
LAYOUT = b"L"
PART = b"P"
PART_BYTES = 8 << 20
MAX_FRAMES = 1 << 16  # frames of one message a layout may name


def _nbytes(frame: Any) -> int:
    return len(frame) if isinstance(frame, bytes) else memoryview(frame).nbytes


def split(frames: list[Any], limit: int = PART_BYTES) -> list[list[Any]]:
    """``[b"D", *rest]`` as the messages to send: itself when it is small, else parts of about ``limit`` bytes."""
    rest = frames[1:]
    sizes = [_nbytes(f) for f in rest]
    if sum(sizes) <= limit or len(rest) > MAX_FRAMES:
        return [frames]
    messages: list[list[Any]] = []
    current: list[Any] = []
    size = 0
    for frame, n in zip(rest, sizes, strict=True):
        view = memoryview(frame).cast("B") if n > limit else None
        for at in range(0, n, limit) if view is not None else (0,):
            piece = view[at : at + limit] if view is not None else frame
            current.append(piece)
            size += _nbytes(piece)
            if size >= limit:
                messages.append([PART, *current])
                current, size = [], 0
    if current:
        messages.append([DATA, *current])
    else:
        messages[-1][0] = DATA
    messages[0][0:1] = [LAYOUT, array("Q", sizes).tobytes()]
    if len(messages) == 1:  # (a layout and the data in one: it needs no parts)
        return [frames]
    return messages


class Joined:
    """A frame put together from pieces, read as a ZeroMQ frame is (``.buffer``, ``.bytes``, ``len``)."""

    __slots__ = ("buffer",)

    def __init__(self, data: bytearray) -> None:
        self.buffer = memoryview(data)

    @property
    def bytes(self) -> bytes:
        return bytes(self.buffer)

    def __len__(self) -> int:
        return self.buffer.nbytes


class Parts:
    """The parts of one peer's message received so far (one per connection: parts arrive in order).

    ``first``, ``add`` and ``join`` take a part's frames without its kind;
    they raise ValueError for parts that do not fit the layout (the message
    is dropped; the next one starts clean).
    """

    __slots__ = ("buf", "filled", "frames", "sizes")

    def __init__(self) -> None:
        self.sizes: list[int] | None = None  # the layout of the message in progress (None: none is)
        self.frames: list[Any] = []  # its frames so far: as received, or Joined
        self.buf: bytearray | None = None  # the frame being put together from pieces
        self.filled = 0

    def first(self, frames: list[Any]) -> None:
        """A message's first part: ``[layout, *pieces]``."""
        cut_short = bool(self.sizes)  # (not one being dropped already: that was said)
        self._reset()
        try:
            layout = array("Q")
            layout.frombytes(_bytes(frames[0]))  # (ValueError unless a whole number of sizes)
            if not 1 <= len(layout) <= MAX_FRAMES:
                raise ValueError(f"a layout of {len(layout)} frames")
            if sum(layout) > _memory():  # (a peer's claim is checked before anything is allocated for it)
                raise ValueError(f"a message of {sum(layout)} bytes, more than this machine's memory")
            self.sizes = list(layout)
            self._take(frames[1:])
        except ValueError:
            self._drop()
            raise
        if cut_short:
            raise ValueError("a message ended without its last part (dropped; the next one is taken)")

    def add(self, frames: list[Any]) -> None:
        """A part between the first and the last."""
        if self.sizes is None:
            raise ValueError("a part of no message (its first part was lost)")
        if not self.sizes:
            return  # (of a message being dropped)
        try:
            self._take(frames)
        except ValueError:
            self._drop()
            raise

    def join(self, frames: list[Any]) -> list[Any]:
        """The last part (its frames, after ``b"D"``): the whole message's frames."""
        if self.sizes is None:
            return frames
        try:
            if not self.sizes:
                raise ValueError("the last part of a message that was dropped")
            self._take(frames)
            if len(self.frames) != len(self.sizes) or self.buf is not None:
                raise ValueError(f"a message of {len(self.frames)} of the {len(self.sizes)} frames its layout names")
            return self.frames
        finally:
            self._reset()

    def _reset(self) -> None:
        self.sizes, self.frames, self.buf, self.filled = None, [], None, 0

    def _drop(self) -> None:
        """The rest of this message goes unread as it comes, up to its last part."""
        self._reset()
        self.sizes = []

    def _take(self, pieces: list[Any]) -> None:
        sizes, frames = self.sizes, self.frames
        assert sizes is not None
        for piece in pieces:
            i = len(frames)
            if i >= len(sizes):
                raise ValueError("a part with more frames than its layout names")
            view = getattr(piece, "buffer", piece)
            n, size = _nbytes(view), sizes[i]
            if self.buf is None:
                if n == size:
                    frames.append(piece)
                    continue
                if n > size:
                    raise ValueError(f"a piece of {n} bytes of a frame of {size}")
                self.buf, self.filled = bytearray(size), 0
            end = self.filled + n
            if end > size:
                raise ValueError(f"pieces of more than the {size} bytes of their frame")
            memoryview(self.buf)[self.filled : end] = memoryview(view).cast("B")
            self.filled = end
            if end == size:
                frames.append(Joined(self.buf))
                self.buf, self.filled = None, 0


def _memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 1 << 40


def _bytes(frame: Any) -> bytes:
    return frame if isinstance(frame, bytes) else bytes(getattr(frame, "buffer", frame))
