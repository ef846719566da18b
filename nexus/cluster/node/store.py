"""This host's object store as the driver runs it: the arena, its allocator, prefaulting, spilling, read mappings.

Regions are handed out under the head's lock (the tables and the allocator
change together: an object's region is freed when the table frees it).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ...core.errors import NexusError, ObjectLostError, ObjectStoreFullError
from ..state.commands import RemoveSpill
from ..state.objects import ObjectEntry
from ..state.workers import WorkerRecord
from ..store import Allocator, Arena, Pin, SpillFolder, default_capacity
from ..values import Blob, StoreClient

if TYPE_CHECKING:
    from ..head.runtime import Runtime

__all__ = ["DriverStoreClient", "JoinedArena", "NodeStore"]


class JoinedArena:
    """An arena of another host as the head keeps it: a joined node's (its workers write there) or an attached
    driver's (its puts); regions handed out here, bytes there."""

    __slots__ = ("allocator", "at", "host", "name")

    def __init__(self, key: int, host: str, size: int, address: str, public: str, name: str = "") -> None:
        self.allocator = Allocator(size)
        self.at = (key, address, public)  # what a blob stored there carries (see Blob.at)
        self.host = host
        self.name = name or f"node {key:06x}"  # how listings and errors say where it is


class NodeStore:
    def __init__(self, rt: Runtime, object_store_memory: int | None) -> None:
        self.rt = rt
        self.config = rt.config
        self.lock = rt.lock
        self.arena = Arena.create(default_capacity(object_store_memory), self.config.arena_chunk, self.config.prefault_step)
        self.allocator = Allocator(self.arena.size)
        self.spills = self.restores = self.spilled_bytes = 0
        self.spill_folder: SpillFolder | None = None  # made at the first spill
        self.prefaulted = 0
        self.prefault_wanted = threading.Event()
        self.prefault_hold = False  # the prefaulter holds a step of the arena while it writes zeros there
        self.prefault_done = threading.Condition(self.lock)  # type: ignore[arg-type]
        self.spilling = 0  # spill files being written with the lock released
        self.spill_done = threading.Condition(self.lock)  # type: ignore[arg-type]
        # Read mappings this process made lately, by object: the next get of the object reuses one
        # (no mmap, no pin count); dropped when the object's refs are gone or the store needs the room.
        self.pin_cache: OrderedDict[int, Pin] = OrderedDict()
        self.prefaulter = threading.Thread(target=self._prefault_loop, name="nexus-prefault", daemon=True)
        self.joined: dict[int, JoinedArena] = {}  # the arenas of joined nodes, by node
        self.puller: Any = None  # reads their regions (remote.objects.Puller), set by the head's service
        self.fetches = self.fetched_bytes = 0

    # -- joined nodes' arenas ----------------------------------------------------------------

    def add_node(self, key: int, host: str, size: int, address: str, public: str, name: str = "") -> None:
        """An arena of another host, kept under ``key``: a node's number, or an attached driver's worker id (which no
        node number can be)."""
        with self.lock:
            self.joined[key] = JoinedArena(key, host, size, address, public, name)

    def joined_at(self, node: int) -> tuple[int, str, str] | None:
        """Where the arena of node ``node`` is served, if it joined with one."""
        joined = self.joined.get(node)
        return None if joined is None else joined.at

    @staticmethod
    def key_of(w: WorkerRecord) -> int:
        """The arena a process writes into: 0 for this host's, else the key of its node's or its own."""
        if not w.remote:
            return 0
        return w.worker_id if w.kind == "driver" else w.node

    def _joined_of(self, w: WorkerRecord | None) -> JoinedArena | None:
        return self.joined.get(self.key_of(w)) if w is not None and w.remote else None

    def free_for(self, w: WorkerRecord, offset: int, nbytes: int) -> None:
        """Give back a region worker ``w`` was given (in its node's arena, or this host's); lock held."""
        if not w.remote:
            self.allocator.free(offset, nbytes)
        elif (joined := self._joined_of(w)) is not None:  # (else that arena is gone, and its regions with it)
            joined.allocator.free(offset, nbytes)

    def free_blob(self, blob: Blob) -> None:
        """Give back the region of a blob no object took (lock held)."""
        assert blob.region is not None
        if blob.at is None:
            self.allocator.free(*blob.region)
        elif (joined := self.joined.get(blob.at[0])) is not None:
            joined.allocator.free(*blob.region)

    def copy_for(self, w: WorkerRecord, entry: ObjectEntry, blob: Blob) -> Blob:
        """What goes to ``w`` for ``blob``, which is in another host's arena (lock held): the copy in ``w``'s own
        arena if there is one; else, the first time, the blob with a region of ``w``'s arena to pull it into (its
        ``at`` says where: a fourth item), which ``w`` says it wrote (``copied``); else the blob, pulled as it is."""
        at, region = blob.at, blob.region
        assert at is not None and region is not None
        key = self.key_of(w)
        joined = self.joined.get(key)
        if key == at[0] or joined is None:
            return blob.copy()
        copies = entry.copies
        if copies is None:
            copies = entry.copies = {}
        have = copies.get(key)
        if have is not None:
            return have[2].copy() if have[2] is not None else blob.copy()  # (being copied there now: this one pulls)
        size = region[1]
        offset = joined.allocator.alloc(size)
        if offset is None:
            return blob.copy()
        copies[key] = (offset, size, None)
        stub = blob.copy()
        stub.at = (*at, offset)
        return stub

    def copied(self, w: WorkerRecord, entry: ObjectEntry | None, offset: int, ok: bool) -> None:
        """``w`` wrote the copy it was asked for at ``offset`` of its arena, or gave it up (lock held)."""
        key = self.key_of(w)
        joined = self.joined.get(key)
        have = entry.copies.get(key) if entry is not None and entry.copies else None
        if have is None or have[0] != offset or have[2] is not None or joined is None:
            return  # (freed meanwhile, with the region: see freed)
        assert entry is not None and entry.copies is not None and entry.blob is not None
        if not ok or entry.blob.at is None:
            del entry.copies[key]
            joined.allocator.free(offset, have[1])
            return
        copy = entry.blob.moved(offset)
        copy.at = joined.at
        entry.copies[key] = (offset, have[1], copy)

    def _alloc_joined(self, joined: JoinedArena, nbytes: int, w: WorkerRecord) -> int:
        offset = joined.allocator.alloc(nbytes)
        if offset is None:
            a = joined.allocator
            raise ObjectStoreFullError(
                f"the object store of {joined.name} ({joined.host}) has no room for {nbytes:,} bytes: capacity "
                f"{a.capacity:,} bytes, {a.used:,} in use, largest free block {a.largest_free:,}; drop references to "
                "objects you no longer need, or start that node with a larger --object-store-memory"
            )
        if not w.alive:
            joined.allocator.free(offset, nbytes)
            raise NexusError(f"{w.name} is gone")
        w.allocs[offset] = nbytes
        return offset

    def fetch_unlocked(self, oid: int) -> None:
        """Bring an object stored on a joined node into this host's arena (this host's workers read it there).

        With the lock released while the bytes come (the object is pinned
        meanwhile); its region on the node is given back once it is here. A
        node that does not answer leaves it where it is (a reader here then
        says why it cannot read it).
        """
        table = self.rt.objects.table
        with self.lock:
            entry = table.get(oid)
            blob = None if entry is None else entry.blob
            if entry is None or blob is None or blob.at is None or self.puller is None or self.rt.closing:
                return
            entry.pins += 1
        here = None
        try:
            size = blob.region[1]
            offset = self.allocate(size)  # the same layout as there: its parts at the same places in the region
            try:
                self.puller.pull(blob.at, blob.parts(), into=blob.parts_at(self.arena.view, offset))
            except BaseException:
                self.free(offset, size)
                raise
            here = blob.moved(offset)
        except (ObjectLostError, ObjectStoreFullError):
            pass  # (the reader here tries itself, and says why it cannot)
        finally:
            with self.lock:
                entry.pins -= 1
                if here is not None:
                    self._fetched(oid, entry, blob, here)
                table.maybe_free(oid, entry)

    def _fetched(self, oid: int, entry: ObjectEntry, blob: Blob, here: Blob) -> None:
        if self.rt.objects.table.get(oid) is entry and entry.blob is blob:
            self.free_blob(blob)
            entry.blob = here
            entry.region = here.region
            self.fetches += 1
            self.fetched_bytes += here.nbytes
            self.rt.emit("object", oid, "fetched", here.nbytes)
        else:  # fetched meanwhile by another reader, or freed
            self.allocator.free(*here.region)  # type: ignore[misc]

    def allocate(self, nbytes: int, w: WorkerRecord | None = None, may_wait: bool = True) -> int:
        """A region of the arena for ``nbytes``, spilling least recently used objects to disk to make room.

        The spill file is written with the lock released (the object is
        pinned meanwhile, so nobody frees or moves it), unless the caller
        holds the lock already (a restore while a message is built): then
        under it. ``may_wait``: the caller holds the lock only for this call,
        so it may wait (~2 ms) for the prefaulter to give back the step it
        holds, rather than allocate around it and fragment the arena.
        """
        rt = self.rt
        lock = self.lock
        if w is not None and w.remote:
            joined = self._joined_of(w)
            if joined is None:
                raise ObjectStoreFullError(f"{w.name} has no arena of its own here")
            with lock:
                return self._alloc_joined(joined, nbytes, w)
        nested = lock.held()
        while True:
            with lock:
                if rt.closing:
                    raise ObjectStoreFullError("the cluster is shutting down")
                while may_wait and self.prefault_hold:
                    self.prefault_done.wait(0.05)
                offset, why = self._alloc_now(nbytes, w)
                if offset is not None:
                    return offset
                if nested:
                    if self.spill_one():
                        continue
                    victim = None
                else:
                    victim = self._begin_spill()
                if victim is None:
                    if self.pin_cache:  # mappings kept for the next get only: give them up and try again
                        self.pin_cache.clear()
                        rt.objects.drain_deferred()
                        continue
                    if self.spilling:  # another thread's spill is making room: wait for it, then look again
                        self.spill_done.wait(0.1)
                        continue
                    raise ObjectStoreFullError(self._full_message(nbytes, why))
                self.spilling += 1
            try:
                self._spill_unlocked(*victim)
            finally:
                with lock:
                    self.spilling -= 1
                    self.spill_done.notify_all()

    def _alloc_now(self, nbytes: int, w: WorkerRecord | None) -> tuple[int | None, str]:
        """A region if one is free now (lock held); else None and why there is none."""
        offset = self.allocator.alloc(nbytes)
        if offset is None:
            if nbytes > self.allocator.capacity:
                raise ObjectStoreFullError(self._full_message(nbytes, "it is larger than the store"))
            return None, "nothing can be spilled"
        try:
            self.arena.reserve(offset + nbytes)
        except OSError:
            self.allocator.free(offset, nbytes)
            return None, "/dev/shm itself is full"
        if w is not None:
            if not w.alive:
                self.allocator.free(offset, nbytes)
                raise NexusError(f"{w.name} is gone")
            w.allocs[offset] = nbytes
        if self.allocator.high_water + self.config.prefault_ahead // 2 > self.prefaulted:
            self.prefault_wanted.set()
        return offset, ""

    def _begin_spill(self) -> tuple[int, ObjectEntry, int, int] | None:
        """Choose what to spill and pin it while its file is written (lock held)."""
        chosen = self.rt.objects.table.spill_victim()
        if chosen is None:
            return None
        oid, entry = chosen
        assert entry.region is not None
        entry.pins += 1  # the spill's own pin: not freed, not chosen again, not moved while it is written
        return oid, entry, *entry.region

    def _spill_unlocked(self, oid: int, entry: ObjectEntry, offset: int, size: int) -> None:
        """Write ``oid``'s bytes to its spill file with the lock released, then give its region back."""
        if self.spill_folder is None:
            with self.lock:
                if self.spill_folder is None:
                    self.spill_folder = SpillFolder()
        name = f"{oid:016x}"
        try:
            self.spill_folder.write(name, self.arena.read(offset, size))
        except BaseException:
            with self.lock:
                self.rt.objects.table.change(oid, 0, -1)
            raise
        with self.lock:
            entry.pins -= 1
            table = self.rt.objects.table
            if table.get(oid) is entry and entry.region == (offset, size) and entry.pins <= 0:
                self.allocator.free(offset, size)
                entry.region = None
                entry.spilled = name
                self.spills += 1
                self.spilled_bytes += size
                self.rt.emit("object", oid, "spilled", size)
            else:  # a reader pinned it meanwhile: it stays in the arena, the file is not needed
                self.lock.after(RemoveSpill(name))
            table.maybe_free(oid, entry)  # its last ref may have gone while the file was written

    def free(self, offset: int, nbytes: int) -> None:
        with self.lock:
            self.allocator.free(offset, nbytes)

    def freed(self, oid: int, entry: ObjectEntry) -> None:
        """The table freed ``oid`` (called with the lock held): its region and its spill file go."""
        lineage = self.rt.scheduler.lineage
        if lineage.by_object:
            lineage.freed(oid)
        if entry.copies:
            for key, (offset, size, _copy) in entry.copies.items():
                if (joined := self.joined.get(key)) is not None:
                    joined.allocator.free(offset, size)
            entry.copies = None
        blob = entry.blob
        if blob is not None and blob.at is not None and blob.region is not None:
            self.free_blob(blob)
            return
        if entry.region is not None:
            self.allocator.free(*entry.region)
            self.rt.emit("object", oid, "freed", entry.region[1])
        if entry.spilled is not None and self.spill_folder is not None:
            self.lock.after(RemoveSpill(entry.spilled))

    def remove_spill(self, name: str) -> None:
        """Carries out a RemoveSpill command."""
        if self.spill_folder is not None:
            self.spill_folder.remove(name)

    def unreferenced(self, oid: int) -> None:
        """Nobody can get ``oid`` again: let its read mapping go."""
        if self.pin_cache.pop(oid, None) is not None:
            self.rt.objects.drain_deferred()

    def _prefault_loop(self) -> None:
        """Keep the arena's pages allocated ahead of the regions handed out (see Arena.prefault).

        Only memory no region ever covered is prefaulted (it is overwritten
        with zeros); an allocation that lands on the step being written
        waits for it.
        """
        rt = self.rt
        self.prefault_wanted.set()
        while not rt.closing:
            self.prefault_wanted.wait()
            with self.lock:
                if rt.closing:
                    return
                start = max(self.prefaulted, self.allocator.high_water)
                target = min(self.arena.size, max(self.config.prefault_first, self.allocator.high_water + self.config.prefault_ahead))
                if start >= target:
                    self.prefault_wanted.clear()
                    continue
                end = min(start + self.config.prefault_step, target)
                try:
                    self.arena.reserve(end)
                except OSError:
                    return  # /dev/shm is full: allocations will say so when they need the memory
                if not self.allocator.take(start, end - start):  # held while zeros are written: nobody gets it
                    self.prefaulted = end
                    continue
                self.prefault_hold = True
            try:
                self.arena.prefault(start, end - start)
            except OSError:
                return
            finally:
                with self.lock:
                    self.allocator.free(start, end - start)
                    self.prefaulted = end
                    self.prefault_hold = False
                    self.prefault_done.notify_all()

    def _full_message(self, nbytes: int, why: str) -> str:
        pinned = self.rt.objects.table.pinned_in_arena()
        return (
            f"the object store has no room for {nbytes:,} bytes ({why}): capacity {self.allocator.capacity:,} bytes, "
            f"{self.allocator.used:,} in use, {sum(o.region[1] for o in pinned if o.region):,} of them in {len(pinned)} "
            f"objects pinned by readers, largest free block {self.allocator.largest_free:,}; drop references or views "
            "of objects you no longer need, or start the cluster with a larger object_store_memory"
        )

    def spill_one(self) -> bool:
        """Move the least recently used unpinned object to disk; False when there is none."""
        chosen = self.rt.objects.table.spill_victim()
        if chosen is None:
            return False
        victim_id, victim = chosen
        assert victim.region is not None
        offset, size = victim.region
        if self.spill_folder is None:
            self.spill_folder = SpillFolder()
        name = f"{victim_id:016x}"
        self.spill_folder.write(name, self.arena.read(offset, size))
        self.allocator.free(offset, size)
        victim.region = None
        victim.spilled = name
        self.spills += 1
        self.rt.emit("object", victim_id, "spilled", size)
        self.spilled_bytes += size
        return True

    def restore_unlocked(self, oid: int) -> None:
        """Read a spilled object back into the arena with the lock released (the caller does not hold it).

        The object is pinned meanwhile (not freed); if another thread
        restored it first, this copy's region is given back.
        """
        table = self.rt.objects.table
        with self.lock:
            entry = table.get(oid)
            if entry is None or entry.spilled is None or entry.blob is None or self.rt.closing:
                return
            name, size = entry.spilled, entry.blob.region[1]
            entry.pins += 1
        try:
            offset = self.allocate(size)
            try:
                assert self.spill_folder is not None
                self.spill_folder.read_into(name, self.arena.view[offset : offset + size])
            except BaseException as exc:
                self.free(offset, size)
                if isinstance(exc, FileNotFoundError):
                    with self.lock:
                        if entry.spilled != name:  # another reader restored it first (and removed the file)
                            table.change(oid, 0, -1)
                            return
                raise
        except BaseException:
            with self.lock:
                table.change(oid, 0, -1)
            raise
        with self.lock:
            entry.pins -= 1
            if table.get(oid) is entry and entry.spilled == name:
                entry.spilled = None
                entry.blob = entry.blob.moved(offset)
                entry.region = entry.blob.region
                self.restores += 1
                self.rt.emit("object", oid, "restored", size)
                self.lock.after(RemoveSpill(name))
            else:  # restored meanwhile by another thread
                self.allocator.free(offset, size)
            table.maybe_free(oid, entry)

    def restore(self, oid: int, entry: ObjectEntry) -> Blob:
        """The blob of a spilled object, its bytes read back into the arena (lock held)."""
        assert entry.blob is not None and entry.spilled is not None
        assert entry.blob.region is not None
        size = entry.blob.region[1]
        offset = self.allocate(size, may_wait=False)  # the caller's locked section must not be interrupted
        assert self.spill_folder is not None
        try:
            self.spill_folder.read_into(entry.spilled, self.arena.view[offset : offset + size])
        except BaseException:
            self.allocator.free(offset, size)
            raise
        self.spill_folder.remove(entry.spilled)
        entry.spilled = None
        entry.blob = entry.blob.moved(offset)
        entry.region = entry.blob.region
        self.restores += 1
        self.rt.emit("object", oid, "restored", size)
        return entry.blob

    def statistics(self) -> dict[str, int]:
        with self.lock:
            return {
                "capacity": self.allocator.capacity,
                "used": self.allocator.used,
                **self.rt.objects.table.statistics(),
                "spills": self.spills,
                "restores": self.restores,
                "spilled_bytes": self.spilled_bytes,
                "reserved": self.arena.reserved,
            }

    def close(self) -> None:
        self.prefault_wanted.set()
        if self.prefaulter.is_alive():
            self.prefaulter.join(5)
        self.arena.close(unlink=True)  # views of it still alive in this process keep their mappings
        if self.spill_folder is not None:
            self.spill_folder.close()


class DriverStoreClient(StoreClient):
    """The driver's side of the object store: allocates directly, counts refs and pins under the head's lock."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.arena = rt.store.arena
        self.objects = rt.objects
        self.inline_max = rt.config.inline_max

    @property
    def puller(self) -> Any:  # type: ignore[override]
        return self.rt.store.puller

    def allocate(self, nbytes: int) -> int:
        return self.rt.store.allocate(nbytes)

    def free(self, offset: int, nbytes: int) -> None:
        self.rt.store.free(offset, nbytes)

    def pin(self, oid: int, region: tuple[int, int]) -> Pin:
        with self.rt.lock:
            if oid not in self.objects.table:
                raise ObjectLostError(f"object {oid:016x} is no longer stored")
            return self.objects.pin(oid, region)

    def acquire(self, oid: int) -> None:
        with self.rt.lock:
            self.objects.change(oid, 1, 0)

    def acquire_many(self, oids: tuple[int, ...]) -> None:
        with self.rt.lock:
            entries = self.objects.table.entries
            for oid in oids:
                entry = entries.get(oid)
                if entry is not None:
                    entry.refs += 1

    def release(self, oid: int) -> None:
        self.objects.finalized(oid, -1, 0)

    def located(self, oid: int) -> Blob | None:
        blobs = self.rt.get_blobs([oid], None)
        return None if blobs is None else blobs[0]
