"""Streaming generators at the head: the values a generator task or method yields, kept for its consumer.

A streaming call has one result id (its *task ref*: made when the generator
ends, holding the error it ended with, if any). Each value it yields comes
as ``("yield", task, seq, blob)`` and is stored under an id made here; the
consumer (an ``ObjectRefGenerator``, in whatever process) asks for value
``i`` with the control op ``stream_next``:

- ``("item", oid)``: value ``i`` is there. The consumer counts its own ref;
  the stream holds one on each value until the consumer asks for a later one.
- ``("wait", oid)``: not yielded yet. ``oid`` is made now, empty, and filled
  by the yield when it comes; the consumer waits for it or the task ref, then
  asks again.
- ``("end", 0)``: the generator ended before value ``i``. When it failed, the
  value after the last is the task ref itself, whose get raises the error.

A yield of an index already stored (a retried generator yields again from
the start) is dropped. Back-pressure: a producer whose values wait unread
asks ``stream_room`` and is answered once the consumer has caught up. A
stream ends when its consumer has read it to the end, or when the task ref
is freed (its generator was dropped): the values still held are let go.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..values import Blob, serialize

if TYPE_CHECKING:
    from ..state.workers import WorkerRecord
    from .runtime import Runtime

__all__ = ["StreamDirectory"]


class _Stream:
    __slots__ = ("cursor", "items", "made", "released", "rooms")

    def __init__(self) -> None:
        self.items: list[int] = []  # the value ids by index: the yielded ones, then perhaps one being waited for
        self.made = 0  # how many were yielded
        self.cursor = 0  # the index the consumer asked for last (it has taken those before)
        self.released = 0  # the stream's refs on values before this index are let go
        self.rooms: list[tuple[Any, int, int, int]] = []  # producers waiting for room: (worker, request, made, room)


class StreamDirectory:
    """Every stream of the cluster, by its task ref; part of the head's runtime (``rt.streams``)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.lock = rt.lock
        self.objects = rt.objects
        self.streams: dict[int, _Stream] = {}
        rt.handlers.update({"yield": self.on_yield, "stream_room": self.on_room})
        # what Runtime.control runs for "stream_next" (a worker's, an attached driver's, this driver's)
        rt.control_stream_next = self.next  # type: ignore[attr-defined]

    # -- the consumer ---------------------------------------------------------------------------

    def next(self, task: int, index: int) -> tuple[str, int]:
        """What the consumer of stream ``task`` gets when it asks for value ``index`` (see the module)."""
        if not isinstance(task, int) or not isinstance(index, int) or index < 0:
            raise ValueError(f"stream_next takes a task ref's id and an index, not {task!r}, {index!r}")
        objects = self.objects
        with self.lock:
            done = objects.entries.get(task)
            stream = self.streams.get(task)
            if stream is None:
                if done is None:
                    return ("end", 0)  # (let go already, or not a stream at all)
                stream = self._open(task)
            ended = done is not None and done.blob is not None
            if index < stream.cursor or (index > len(stream.items) and not ended):
                raise ValueError(f"value {index} of stream {task:x} is not the next one (that is {stream.cursor})")
            self._taken(stream, index)
            if index < stream.made:
                return ("item", stream.items[index])
            if ended:  # the generator has ended
                assert done is not None
                if done.blob.error and index == stream.made:
                    return ("item", task)
                self._close(task)
                return ("end", 0)
            if index == len(stream.items):
                oid = self.rt.new_id()
                objects.new(oid)  # (its one ref: the stream's)
                stream.items.append(oid)
            return ("wait", stream.items[index])

    def _taken(self, stream: _Stream, index: int) -> None:
        """The consumer has its own refs to the values before ``index``: the stream lets go of its own."""
        stream.cursor = index
        while stream.released < min(index, stream.made):
            self.objects.change(stream.items[stream.released], -1, 0)
            stream.released += 1
        if stream.rooms:
            self._answer_rooms(stream, False)

    def _answer_rooms(self, stream: _Stream, every: bool) -> None:
        waiting = []
        for w, request, made, room in stream.rooms:
            if every or made - stream.cursor < room:
                self.rt.outbox.send(w, ("objects", request, [(0, True)]))
            else:
                waiting.append((w, request, made, room))
        stream.rooms = waiting

    # -- the producer -------------------------------------------------------------------------

    def on_yield(self, w: WorkerRecord, task: int, seq: int, blob: Blob) -> None:
        objects = self.objects
        with self.lock:
            stream = self.streams.get(task)
            if stream is None and task in objects.entries:
                stream = self._open(task)
            if stream is None or seq != stream.made:  # nobody reads it any more, or a retry's repeat
                if blob.region is not None:
                    w.allocs.pop(blob.region[0], None)
                    self.rt.store.free_blob(blob)
                return
            if seq < len(stream.items):
                oid = stream.items[seq]  # (the consumer waits for it)
            else:
                oid = self.rt.new_id()
                objects.new(oid)
                stream.items.append(oid)
            stream.made += 1
            objects.store(oid, blob, w)
        self.rt.emit("object", oid, "put", blob.nbytes)

    def on_room(self, w: WorkerRecord, request: int, task: int, made: int, room: int) -> None:
        """The producer has yielded ``made`` values and may leave ``room`` unread: answered once it may go on."""
        with self.lock:
            stream = self.streams.get(task)
            if stream is not None and made - stream.cursor >= room:
                stream.rooms.append((w, request, made, room))
                return
            self.rt.outbox.send(w, ("objects", request, [(0, True)]))

    # -- the stream's life ------------------------------------------------------------------------

    def _open(self, task: int) -> _Stream:
        self.objects.watch_free(task, self._close)  # (the task ref freed: its stream goes)
        stream = self.streams[task] = _Stream()
        return stream

    def _close(self, task: int) -> None:
        """Let go of what stream ``task`` still holds (under the lock): values unread, and one being waited for."""
        stream = self.streams.pop(task, None)
        if stream is None:
            return
        objects = self.objects
        for oid in stream.items[stream.released :]:
            entry = objects.entries.get(oid)
            if entry is not None and entry.blob is None:  # never yielded: made empty, so that it can go
                objects.store(oid, serialize(None, "the end of a stream", inline=True))
            objects.change(oid, -1, 0)
        self._answer_rooms(stream, True)

    def close_all(self) -> None:
        with self.lock:
            for task in list(self.streams):
                self._close(task)
