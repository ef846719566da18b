"""Shared-memory segments as files in /dev/shm, mapped with mmap.

Not ``multiprocessing.shared_memory``: its objects unlink on their creator's
exit through the resource tracker (under the feet of every other process)
and complain from ``__del__`` when a numpy array still views the memory.
Here a mapping lives exactly as long as the last view of it; a segment is
removed by whoever owns it (the driver), by ``remove_cluster_segments`` when
a cluster ends, or by a worker that outlives its driver.

Names: ``nexus-<cluster>-<kind>-<pid>-<random>``, where ``<cluster>`` is the
driver's pid, so every segment of one cluster can be found and removed.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import secrets

__all__ = [
    "SEGMENT_PREFIX",
    "Segment",
    "attach_segment",
    "cluster_id",
    "create_segment",
    "remove_cluster_segments",
    "remove_dead_clusters",
    "unlink_segment",
]

SEGMENT_PREFIX = "nexus-"
SHM_DIR = "/dev/shm"


def cluster_id() -> str:
    """The id of the cluster this process belongs to: the driver's pid (inherited by workers through the environment)."""
    return os.environ.get("NEXUS_CLUSTER_ID") or str(os.getpid())


class Segment:
    """A mapped segment: ``name``, ``size`` and ``buf`` (a memoryview of the mapping)."""

    __slots__ = ("buf", "map", "name", "size")

    def __init__(self, name: str, mapping: mmap.mmap, size: int, readonly: bool) -> None:
        self.name = name
        self.map = mapping
        self.size = size
        view = memoryview(mapping)
        self.buf = view.toreadonly() if readonly else view


def _path(name: str) -> str:
    if "/" in name or not name.startswith(SEGMENT_PREFIX):
        raise ValueError(f"not a Nexus segment name: {name!r}")
    return os.path.join(SHM_DIR, name)


def create_segment(kind: str, size: int) -> Segment:
    name = f"{SEGMENT_PREFIX}{cluster_id()}-{kind}-{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(_path(name), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        os.ftruncate(fd, max(size, 1))
        mapping = mmap.mmap(fd, max(size, 1))
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_path(name))
        raise
    os.close(fd)
    return Segment(name, mapping, size, readonly=False)


def attach_segment(name: str, readonly: bool = False) -> Segment:
    fd = os.open(_path(name), os.O_RDONLY if readonly else os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        mapping = mmap.mmap(fd, size, prot=mmap.PROT_READ) if readonly else mmap.mmap(fd, size)
    finally:
        os.close(fd)
    return Segment(name, mapping, size, readonly)


def unlink_segment(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_path(name))


def remove_dead_clusters() -> int:
    """The janitor: remove the segments of clusters whose driver is no longer running (it and its workers
    were killed together, so nobody cleaned up). Returns how many."""
    removed = 0
    dead: dict[str, bool] = {}
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(SHM_DIR):
            if not entry.startswith(SEGMENT_PREFIX):
                continue
            cluster = entry[len(SEGMENT_PREFIX) :].split("-", 1)[0]
            if cluster not in dead:
                dead[cluster] = cluster.isdigit() and not _alive(int(cluster))
            if dead[cluster]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(SHM_DIR, entry))
                    removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def remove_cluster_segments(cluster: str) -> int:
    """Remove every segment of ``cluster``; returns how many. Mappings still in use stay valid until dropped."""
    prefix = f"{SEGMENT_PREFIX}{cluster}-"
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(SHM_DIR):
            if entry.startswith(prefix):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(SHM_DIR, entry))
                    removed += 1
    return removed
