"""The shared-memory object store: one arena per host, a sub-allocator, read pins and spilling.

The arena is one file in /dev/shm (``nexus-<cluster>-arena-...``), created by
the driver at ``init`` with the size of ``object_store_memory`` and mapped by
every process of the cluster. Storing an object never creates a segment: the
driver's :class:`Allocator` hands out page-aligned regions of the arena (a
worker asks the driver for one), the writer copies the object's buffers in
once, and every reader maps the region read-only, so that a numpy array read
from the store is a view of the very same memory in every process, and
writing through it raises.

Memory is reserved with ``fallocate`` as the allocator first reaches it (in
``ClusterConfig.arena_chunk`` steps), so a full /dev/shm is an :class:`ObjectStoreFullError`
at allocation time, never a SIGBUS at a page fault later. The allocator hands
out the lowest free addresses first, so the memory objects come back to is
memory every process has already faulted in: a fresh page costs ~5 us, a
copy into a touched one runs at memory bandwidth.

A reader's view holds a :class:`Pin` (a read-only mapping of the region):
while any pin of an object is alive, in any process, the object is neither
freed nor spilled; the pin's mapping goes away with the last view of it.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import warnings
from bisect import bisect_left, insort
from collections.abc import Callable
from typing import Any

from ..core.errors import ObjectStoreFullError
from .shm_util import SEGMENT_PREFIX, SHM_DIR, check_private, cluster_id, private_dir

__all__ = [
    "PAGE",
    "Allocator",
    "Arena",
    "ObjectStoreFullError",
    "Pin",
    "SpillFolder",
    "default_capacity",
    "default_memory",
]

PAGE = mmap.PAGESIZE
SMALL_SHM_WARNING = 1 << 30
_zeros: bytes | None = None
_WRITE_STEP = 8 << 20  # large writes into the arena go in steps of this size (see Arena.write)


def _round_up(n: int, to: int = PAGE) -> int:
    return (n + to - 1) // to * to


class Allocator:
    """First-fit allocation of page-aligned regions in ``[0, capacity)``; frees coalesce with their neighbours.

    Pure bookkeeping (no memory is touched), used by the driver only.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity - capacity % PAGE
        self._starts: list[int] = [0] if self.capacity else []  # free blocks, sorted by start
        self._sizes: dict[int, int] = {0: self.capacity} if self.capacity else {}
        self.used = 0
        self.high_water = 0  # the end of the highest region ever handed out

    def alloc(self, nbytes: int) -> int | None:
        """The offset of a free region of at least ``nbytes`` (rounded up to a page); None when none is free."""
        size = _round_up(max(nbytes, 1))
        for start in self._starts:
            free = self._sizes[start]
            if free >= size:
                self._starts.remove(start)
                del self._sizes[start]
                if free > size:
                    insort(self._starts, start + size)
                    self._sizes[start + size] = free - size
                self.used += size
                self.high_water = max(self.high_water, start + size)
                return start
        return None

    def take(self, offset: int, nbytes: int) -> bool:
        """Hold ``[offset, offset + nbytes)`` if it is free, without counting it as used memory (for the prefaulter)."""
        size = _round_up(max(nbytes, 1))
        i = bisect_left(self._starts, offset + 1) - 1
        if i < 0:
            return False
        start = self._starts[i]
        free = self._sizes[start]
        if start + free < offset + size:
            return False
        del self._starts[i]
        del self._sizes[start]
        if start < offset:
            insort(self._starts, start)
            self._sizes[start] = offset - start
        if offset + size < start + free:
            insort(self._starts, offset + size)
            self._sizes[offset + size] = start + free - offset - size
        self.used += size
        return True

    def free(self, offset: int, nbytes: int) -> None:
        size = _round_up(max(nbytes, 1))
        if offset < 0 or offset + size > self.capacity or offset % PAGE:
            raise ValueError(f"not a region of this arena: offset {offset}, {nbytes} bytes")
        i = bisect_left(self._starts, offset)
        if i < len(self._starts) and self._starts[i] < offset + size:
            raise ValueError(f"region at {offset} is already free")
        if i > 0 and self._starts[i - 1] + self._sizes[self._starts[i - 1]] > offset:
            raise ValueError(f"region at {offset} is already free")
        self.used -= size
        start = offset
        if i < len(self._starts) and self._starts[i] == offset + size:  # merge with the next block
            size += self._sizes.pop(self._starts.pop(i))
        if i > 0:
            before = self._starts[i - 1]
            if before + self._sizes[before] == start:  # merge with the previous block
                self._sizes[before] += size
                return
        self._starts.insert(i, start)
        self._sizes[start] = size

    @property
    def largest_free(self) -> int:
        return max(self._sizes.values(), default=0)

    @property
    def free_blocks(self) -> int:
        return len(self._starts)


class Pin(mmap.mmap):
    """A read-only mapping of one object's region; views of the object keep it (and so the object) alive."""

    _on_release: Callable[[], None] | None = None

    def __del__(self) -> None:
        hook, self._on_release = self._on_release, None
        if hook is not None:
            with contextlib.suppress(Exception):
                hook()


class Arena:
    """The arena file, mapped writable in this process (the driver creates it; workers attach)."""

    chunk = 64 << 20  # reserved in steps of this (ClusterConfig.arena_chunk; driver only)
    step = 2 << 20  # prefaulted this much per write (ClusterConfig.prefault_step; driver only)

    def __init__(self, name: str, size: int, fd: int, owner: bool) -> None:
        self.name = name
        self.size = size
        self.fd = fd
        self.owner = owner
        self.map = mmap.mmap(fd, size) if size else None
        self.view = memoryview(self.map) if self.map is not None else memoryview(b"")
        self.reserved = 0  # bytes from 0 that fallocate has reserved (driver only)

    @classmethod
    def create(cls, capacity: int, chunk: int = chunk, step: int = step) -> Arena:
        size = _round_up(capacity)
        name = f"{SEGMENT_PREFIX}{cluster_id()}-arena-{os.getpid()}-{os.urandom(4).hex()}"
        fd = os.open(os.path.join(SHM_DIR, name), os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, size)
            arena = cls(name, size, fd, owner=True)
            arena.chunk, arena.step = chunk, step
            return arena
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(SHM_DIR, name))
            raise

    @classmethod
    def attach(cls, name: str) -> Arena:
        if "/" in name or not name.startswith(SEGMENT_PREFIX):
            raise ValueError(f"not a Nexus arena: {name!r}")
        fd = os.open(os.path.join(SHM_DIR, name), os.O_RDWR | os.O_CLOEXEC)
        return cls(name, os.fstat(fd).st_size, fd, owner=False)

    @classmethod
    def inherited(cls, fd: int) -> Arena:
        """The arena whose descriptor this process was started with (a node agent's, whose file is unlinked)."""
        return cls(f"fd-{fd}", os.fstat(fd).st_size, fd, owner=False)

    def unlink(self) -> None:
        """Remove its file (mappings and descriptors open keep it): nothing is left once they are closed."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(SHM_DIR, self.name))

    def spec(self) -> str:
        return self.name

    def reserve(self, end: int) -> None:
        """Reserve the arena's memory up to ``end`` (in ``chunk`` steps); OSError(ENOSPC) when /dev/shm is full."""
        if end <= self.reserved:
            return
        target = min(self.size, _round_up(end, self.chunk))
        try:
            os.posix_fallocate(self.fd, self.reserved, target - self.reserved)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.ENOMEM, errno.EFBIG):
                raise OSError(errno.ENOSPC, f"/dev/shm has no room for {target - self.reserved} more bytes") from exc
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
        self.reserved = target

    def ensure(self, offset: int, nbytes: int) -> None:
        """Reserve ``[offset, offset + nbytes)`` before writing it (an arena whose regions another process hands
        out); OSError(ENOSPC) when /dev/shm has no room. Writing to an unreserved page of a full /dev/shm is a
        SIGBUS, not an error."""
        try:
            os.posix_fallocate(self.fd, offset, nbytes)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.ENOMEM, errno.EFBIG):
                raise OSError(errno.ENOSPC, f"/dev/shm has no room for {nbytes} more bytes") from exc
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise

    def prefault(self, offset: int, length: int) -> None:
        """Allocate and clear the pages of ``[offset, offset + length)`` now, by writing zeros to the file.

        A first write to a page of shared memory costs ~5 us (the kernel
        allocates and clears it): 0.8 GB/s instead of ~13 GB/s. Writing
        zeros through the file does that work ahead of time on a background
        thread, without the GIL and without the process's mmap lock (which
        read views need); a writer then pays only a minor fault per page.
        Only for memory no object was ever given: it overwrites.
        """
        global _zeros
        step = self.step
        if _zeros is None or len(_zeros) < step:
            _zeros = bytes(step)
        end = offset + length
        while offset < end:
            n = min(step, end - offset)
            os.pwrite(self.fd, memoryview(_zeros)[:n], offset)
            offset += n

    def write(self, offset: int, data: Any) -> None:
        view = memoryview(data).cast("B")
        n = view.nbytes
        if n <= _WRITE_STEP:
            self.view[offset : offset + n] = view
            return
        # In steps: one copy of a large value would hold the GIL for its whole length (0.1 s a GiB warm, more
        # on fresh pages), and the process's other threads (a link's beats, the head's loop) with it
        for at in range(0, n, _WRITE_STEP):
            end = min(at + _WRITE_STEP, n)
            self.view[offset + at : offset + end] = view[at:end]

    def pin(self, offset: int, nbytes: int, on_release: Callable[[], None] | None) -> Pin:
        """Map ``[offset, offset + nbytes)`` read-only; ``on_release`` runs when the last view of it is gone."""
        pin = Pin(self.fd, max(nbytes, 1), offset=offset, prot=mmap.PROT_READ)
        pin._on_release = on_release
        return pin

    def read(self, offset: int, nbytes: int) -> memoryview:
        return self.view[offset : offset + nbytes]

    def close(self, unlink: bool = False) -> None:
        with contextlib.suppress(Exception):
            self.view.release()
        if self.map is not None:
            with contextlib.suppress(BufferError):  # a view of the writable map is still alive: the mapping outlives us
                self.map.close()
        with contextlib.suppress(OSError):
            os.close(self.fd)
        if unlink:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(SHM_DIR, self.name))


def _dev_shm() -> tuple[int, int]:
    """(total, free) bytes of /dev/shm."""
    st = os.statvfs(SHM_DIR)
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize


def default_capacity(requested: float | None) -> int:
    """The arena's size: ``requested``, or 30% of RAM; never more than 90% of what /dev/shm has free.

    Warns when /dev/shm is small (containers default to 64 MB) or too small for the request.
    """
    total, free = _dev_shm()
    if total < SMALL_SHM_WARNING:
        warnings.warn(
            f"/dev/shm holds only {total / 2**20:.0f} MiB, so the object store is small and large objects will "
            "spill to disk or fail; in a container, start it with a larger --shm-size (for example --shm-size=4g)",
            ResourceWarning,
            stacklevel=3,
        )
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = int(free * 0.9)
    if requested is not None:
        if isinstance(requested, float) and requested.is_integer():  # (Ray's programs write 7e8)
            requested = int(requested)
        if not isinstance(requested, int) or requested < PAGE:
            raise ValueError(f"object_store_memory must be a number of bytes of at least {PAGE}, not {requested!r}")
        if requested > limit:
            warnings.warn(
                f"object_store_memory={requested:,} is more than /dev/shm has free ({free:,} bytes); using {limit:,}",
                ResourceWarning,
                stacklevel=3,
            )
            return max(PAGE, limit)
        return requested
    return max(PAGE, min(int(ram * 0.3), limit))


def default_memory(store: float | None) -> float:
    """A node's ``memory`` resource (bytes tasks and actors may reserve with ``memory=``, as Ray's): 70% of its
    RAM less the object store's share (``store``, or the default 30% of RAM)."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return float(max(0, int(ram * 0.7 - (ram * 0.3 if store is None else store))))


class SpillFolder:
    """Where objects spill to: a private folder on disk (not /dev/shm), files opened relative to it.

    Made on first use with :func:`~nexus.cluster.shm_util.private_dir`
    (random name, mode 0700, owner checked). Files are created with
    ``O_EXCL`` and opened through the folder's descriptor, never by path, so
    even a folder moved away and replaced meanwhile is not read from or
    written to.
    """

    def __init__(self) -> None:
        self.path = private_dir("spill")
        self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            check_private(os.fstat(self.fd), self.path)
        except BaseException:
            os.close(self.fd)
            raise

    def write(self, name: str, data: Any) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=self.fd)
        with open(fd, "wb") as f:
            f.write(data)

    def read_into(self, name: str, view: memoryview) -> None:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        with open(fd, "rb") as f:
            if f.readinto(view) != view.nbytes:
                raise OSError(errno.EIO, f"spilled object {name} is shorter than it was written")

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)

    def close(self) -> None:
        """Remove the folder and what is in it."""
        with contextlib.suppress(OSError):
            for name in os.listdir(self.fd):
                self.remove(name)
        with contextlib.suppress(OSError):
            os.close(self.fd)
        with contextlib.suppress(OSError):
            os.rmdir(self.path)
