"""The object table: what each object is (once made), who counts on it, where its bytes are.

An object lives while anything counts on it: ObjectRefs anywhere in the
cluster, values holding its ref (containment), tasks waiting for it; its
bytes stay in place while a reader holds a pin of them. When both counts are
gone the table frees it and says so (``on_free``), and the owner of the
memory gives the region back. Blobs are opaque here: only their ``region``,
``at``, ``refs`` and ``oid`` are read (a blob whose ``at`` is set has its
region in a joined node's arena: ``ObjectEntry.region`` is this host's only).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any, Protocol

__all__ = ["ObjectEntry", "ObjectTable", "ObjectWait", "Waiter"]


class Waiter(Protocol):
    """What waits for objects to be made: a task, a call or an actor for its arguments, a caller's get or wait.

    ``missing`` counts the objects it still waits for; the table counts it
    down as each is made and returns it once it reaches zero, for the head to
    act on by its type (dispatch the task, start the actor, wake the caller).
    """

    missing: int


class ObjectWait:
    """A caller waiting for objects to be made (a get, a wait); the head's subclasses say whom to wake."""

    __slots__ = ("missing",)

    def __init__(self) -> None:
        self.missing = 0


class ObjectEntry:
    """One object: its blob once made, who counts on it, where its bytes are."""

    __slots__ = ("blob", "contained", "copies", "pins", "refs", "region", "spilled", "used", "waiters")

    def __init__(self, refs: int = 1) -> None:
        self.blob: Any = None
        self.waiters: list[Waiter] = []  # counted down once when it is made (tasks, calls, actors, gets, waits)
        self.refs = refs  # ObjectRefs anywhere, values holding it, tasks waiting for it
        self.pins = 0  # readers' views (and blobs on their way to a worker): not freed, not spilled
        self.region: tuple[int, int] | None = None  # its bytes in the arena
        self.contained: tuple[int, ...] = ()  # objects whose refs its value holds
        self.spilled: str | None = None  # the file it was spilled to
        self.used = 0  # when it was last stored or read (for spilling the least recently used)
        self.copies: dict[int, tuple[int, int, Any]] | None = None  # copies in other arenas: key -> (offset, size, blob or None)

    def __repr__(self) -> str:
        state = "pending" if self.blob is None else "spilled" if self.spilled else "arena" if self.region else "inline"
        return f"ObjectEntry({state}, refs={self.refs}, pins={self.pins})"


def _nothing(_oid: int) -> None:
    return None


class ObjectTable:
    """Objects by id.

    ``on_free(oid, entry)`` is called for each object freed, with its region
    and spill file still set; ``on_unreferenced(oid)`` for one whose last ref
    went while a reader still pins it (nobody can ask for it again).
    """

    def __init__(self, on_free: Callable[[int, ObjectEntry], None], on_unreferenced: Callable[[int], None] = _nothing) -> None:
        self.entries: dict[int, ObjectEntry] = {}
        self.on_free = on_free
        self.on_unreferenced = on_unreferenced
        self.ticks = itertools.count(1)  # a clock of uses, for the spill choice

    def __contains__(self, oid: int) -> bool:
        return oid in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[int]:
        return iter(self.entries)

    def get(self, oid: int) -> ObjectEntry | None:
        return self.entries.get(oid)

    def new(self, oid: int) -> ObjectEntry:
        """A new object (not made yet) with one ref: its maker's."""
        entry = self.entries[oid] = ObjectEntry()
        return entry

    def touch(self, entry: ObjectEntry) -> None:
        entry.used = next(self.ticks)

    def store(self, oid: int, blob: Any) -> list[Waiter] | None:
        """``oid`` has its value (or error) now; returns the waiters for which it was the last missing object.

        None when nobody wants it any more (every ref is gone, or it has its
        outcome already: a late result after a kill): the caller gives the
        blob's region back.
        """
        entry = self.entries.get(oid)
        if entry is None or entry.blob is not None:
            return None
        blob.oid = oid
        entry.blob = blob
        entry.region = blob.region if getattr(blob, "at", None) is None else None
        entry.used = next(self.ticks)
        if blob.refs:
            entry.contained = blob.refs
            for inner in blob.refs:
                self.change(inner, 1, 0)
        waiters, entry.waiters = entry.waiters, []
        ready = []
        for waiter in waiters:
            waiter.missing -= 1
            if waiter.missing == 0:
                ready.append(waiter)
        return ready

    def change(self, oid: int, dref: int, dpin: int) -> ObjectEntry | None:
        """Count refs and pins gained (positive) or lost (negative); frees the object when both reach zero."""
        entry = self.entries.get(oid)
        if entry is None:
            return None
        entry.refs += dref
        entry.pins += dpin
        if (dref < 0 or dpin < 0) and entry.refs <= 0:
            if entry.pins <= 0 and entry.blob is not None and not entry.waiters:
                self.free(oid, entry)
            else:
                self.on_unreferenced(oid)
        return entry

    def maybe_free(self, oid: int, entry: ObjectEntry) -> None:
        if entry.refs <= 0 and entry.pins <= 0 and entry.blob is not None and not entry.waiters:
            self.free(oid, entry)

    def free(self, oid: int, entry: ObjectEntry) -> None:
        """Free ``entry`` and, in turn, the objects only it kept alive."""
        if self.entries.pop(oid, None) is None:
            return
        self.on_free(oid, entry)
        entry.region = None
        entry.spilled = None
        if entry.contained:
            self._free_contained(entry.contained)

    def _free_contained(self, contained: tuple[int, ...]) -> None:
        """Drop the refs a freed value held: a loop, not a recursion (values can nest thousands deep)."""
        entries = self.entries
        pending = list(contained)
        while pending:
            inner_id = pending.pop()
            inner = entries.get(inner_id)
            if inner is None:
                continue
            inner.refs -= 1
            if inner.refs > 0:
                continue
            if inner.pins <= 0 and inner.blob is not None and not inner.waiters:
                del entries[inner_id]
                self.on_free(inner_id, inner)
                inner.region = None
                inner.spilled = None
                pending.extend(inner.contained)
            else:
                self.on_unreferenced(inner_id)

    def hold(self, deps: list[int], waiter: Waiter) -> int:
        """Count a ref on each dependency and make ``waiter`` wait for those not made yet; returns how many."""
        missing = 0
        entries = self.entries
        for oid in deps:
            entry = entries.get(oid)
            if entry is None:
                continue
            entry.refs += 1
            if entry.blob is None:
                missing += 1
                entry.waiters.append(waiter)
        waiter.missing = missing
        return missing

    def watch(self, ids: list[int], waiter: Waiter, enough: int) -> int:
        """Make ``waiter`` wait until ``enough`` of ``ids`` are made (without counting on them); returns how many more.

        An id the table does not know counts as made (it was freed: a get
        says it is lost). An id listed twice counts twice, both ways.
        """
        entries = self.entries
        waiting = [entry for oid in ids if (entry := entries.get(oid)) is not None and entry.blob is None]
        missing = max(0, enough - (len(ids) - len(waiting)))
        if missing:
            for entry in waiting:
                entry.waiters.append(waiter)
        waiter.missing = missing
        return missing

    def unwatch(self, ids: list[int], waiter: Waiter) -> None:
        """``waiter`` waits no more (its time ran out): off the lists of the entries still being made, which would
        otherwise keep it until they are (a poll with a timeout would pile up one a call)."""
        for oid in set(ids):
            entry = self.entries.get(oid)
            if entry is not None and entry.blob is None and entry.waiters:
                entry.waiters = [w for w in entry.waiters if w is not waiter]

    def spill_victim(self) -> tuple[int, ObjectEntry] | None:
        """The least recently used object whose bytes are in the arena and that no reader pins."""
        victim_id, victim = 0, None
        for oid, entry in self.entries.items():
            if entry.region is not None and entry.pins <= 0 and entry.blob is not None and (victim is None or entry.used < victim.used):
                victim_id, victim = oid, entry
        return None if victim is None else (victim_id, victim)

    def pinned_in_arena(self) -> list[ObjectEntry]:
        return [e for e in self.entries.values() if e.region is not None and e.pins > 0]

    def statistics(self) -> dict[str, int]:
        in_arena = [e for e in self.entries.values() if e.region is not None]
        return {
            "objects": len(self.entries),
            "objects_in_arena": len(in_arena),
            "pinned": sum(1 for e in in_arena if e.pins > 0),
            "spilled_now": sum(1 for e in self.entries.values() if e.spilled is not None),
        }
