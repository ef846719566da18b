"""A cluster's files: shared-memory segments in /dev/shm (mapped with mmap) and private temporary folders.

Not ``multiprocessing.shared_memory``: its objects unlink on their creator's
exit through the resource tracker (under the feet of every other process)
and complain from ``__del__`` when a numpy array still views the memory.
Here a mapping lives exactly as long as the last view of it; a segment is
removed by whoever owns it (the driver), by ``remove_cluster_files`` when
a cluster ends, or by a worker that outlives its driver.

Names: ``nexus-<cluster>-<kind>-...``, where ``<cluster>`` is the driver's
pid, so every file of one cluster can be found and removed: segments
``nexus-<cluster>-<kind>-<pid>-<random>`` in /dev/shm, folders (spilled
objects, ZeroMQ sockets) ``nexus-<cluster>-<kind>-<random>`` in the
temporary directory, made atomically with an unpredictable name and mode
0700 (:func:`private_dir`). Only files owned by this process's user are
ever removed: another local user may make files with the same prefix.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import secrets
import shutil
import stat
import tempfile

__all__ = [
    "SEGMENT_PREFIX",
    "Segment",
    "attach_segment",
    "check_private",
    "cluster_id",
    "create_segment",
    "private_dir",
    "remove_cluster_files",
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


def private_dir(kind: str) -> str:
    """A new folder ``nexus-<cluster>-<kind>-<random>`` in the temporary directory, mode 0700, owner checked.

    ``mkdtemp`` makes it atomically under a name nobody can guess, so
    another local user cannot have made it first (a fixed name such as
    ``nexus-spill-<pid>``, made with ``exist_ok``, would be theirs to read
    and to fill with pickles).
    """
    path = tempfile.mkdtemp(prefix=f"{SEGMENT_PREFIX}{cluster_id()}-{kind}-")
    check_private(os.lstat(path), path)
    return path


def check_private(st: os.stat_result, path: str) -> None:
    """Refuse a folder that is not this user's own private one (a symlink, another owner, open to others)."""
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise PermissionError(
            f"{path} is not a private folder of this user (owner uid {st.st_uid}, mode {stat.filemode(st.st_mode)}); "
            "Nexus keeps objects and sockets only in folders it made itself with mode 0700: remove it, or set TMPDIR "
            "to a folder only you can write"
        )


def _cluster_entries() -> list[tuple[str, str, str]]:
    """(cluster, path, where) of every file or folder named like a cluster's, in /dev/shm and the temporary directory."""
    found = []
    for where in (SHM_DIR, tempfile.gettempdir()):
        with contextlib.suppress(OSError):
            for entry in os.listdir(where):
                if entry.startswith(SEGMENT_PREFIX):
                    found.append((entry[len(SEGMENT_PREFIX) :].split("-", 1)[0], os.path.join(where, entry), where))
    return found


def _remove_owned(path: str, where: str) -> bool:
    """Remove ``path`` if this user owns it (a segment, or a folder of ours in the temporary directory)."""
    try:
        st = os.lstat(path)
        if st.st_uid != os.geteuid():
            return False  # another user's: not ours to touch (and /dev/shm's sticky bit would refuse anyway)
        if stat.S_ISDIR(st.st_mode) and where != SHM_DIR:
            shutil.rmtree(path)
        elif stat.S_ISREG(st.st_mode):
            os.unlink(path)
        else:
            return False
    except OSError:
        return False
    return True


def remove_dead_clusters() -> int:
    """The janitor: remove the files of this user's clusters whose driver is no longer running (it and its
    workers were killed together, so nobody cleaned up). Returns how many."""
    removed = 0
    dead: dict[str, bool] = {}
    for cluster, path, where in _cluster_entries():
        if cluster not in dead:
            dead[cluster] = cluster.isdigit() and not _alive(int(cluster))
        if dead[cluster] and _remove_owned(path, where):
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


def remove_cluster_files(cluster: str) -> int:
    """Remove every file of ``cluster`` (segments, folders); returns how many. Mappings in use stay valid until dropped."""
    return sum(1 for name, path, where in _cluster_entries() if name == cluster and _remove_owned(path, where))
