"""Large data messages between hosts go as parts, so that a link never falls silent while one crosses it.

ZeroMQ hands over a multipart message only once all of it has arrived: a
1 GiB value at a few hundred MB/s would leave the receiver hearing nothing
from its peer for seconds, and declaring it dead. So a data message
(``[b"D", envelope, *buffers]``) of more than ``PART_BYTES`` is sent as
messages of about that size: ``[b"P", *frames]`` for all but the last,
which is ``[b"D", *frames]``. They travel in order on one connection; the
receiver (:class:`Parts`) joins them back into the one message, and each
part counts as hearing from the peer. No bytes are copied: the parts are
the same frames, grouped.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DATA", "PART", "PART_BYTES", "Parts", "split"]

DATA = b"D"
PART = b"P"
PART_BYTES = 8 << 20


def _nbytes(frame: Any) -> int:
    return len(frame) if isinstance(frame, bytes) else memoryview(frame).nbytes


def split(frames: list[Any], limit: int = PART_BYTES) -> list[list[Any]]:
    """``[b"D", *rest]`` as the messages to send: itself when it is small, else parts of about ``limit`` bytes."""
    rest = frames[1:]
    if len(rest) < 2 or sum(_nbytes(f) for f in rest) <= limit:
        return [frames]
    messages: list[list[Any]] = []
    current: list[Any] = []
    size = 0
    for frame in rest:
        current.append(frame)
        size += _nbytes(frame)
        if size >= limit:
            messages.append([PART, *current])
            current, size = [], 0
    if current:
        messages.append([DATA, *current])
    else:
        messages[-1][0] = DATA
    return messages


class Parts:
    """The parts of one peer's message received so far (one per connection: parts arrive in order)."""

    __slots__ = ("frames",)

    def __init__(self) -> None:
        self.frames: list[Any] = []

    def add(self, frames: list[Any]) -> None:
        """A part (its frames, without the leading ``b"P"``)."""
        self.frames.extend(frames)

    def join(self, frames: list[Any]) -> list[Any]:
        """The last part (its frames, without the leading ``b"D"``): the whole message's frames, after the kind."""
        if not self.frames:
            return frames
        whole = [*self.frames, *frames]
        self.frames = []
        return whole
