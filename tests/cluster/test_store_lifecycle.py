"""The object store when it is full, and what is left after shutdown and crashes (each test runs its own cluster)."""

from __future__ import annotations

import gc
import glob
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest

import nexus
from nexus.cluster.events import WorkerDied
from nexus.core.errors import ObjectStoreFullError

from ..conftest import wait_until
from .test_store import MiB, _stats, first_and_writable, put_in_worker_and_return_ref

# -- a full store ------------------------------------------------------------------------------------


def test_a_full_store_spills_and_restores():
    nexus.init(num_cpus=1, object_store_memory=48 * MiB)
    try:
        refs = [nexus.put(np.full(2 * MiB, i, dtype=np.int64)) for i in range(5)]  # 80 MiB into 48
        stats = _stats()
        assert stats["spills"] >= 2 and stats["used"] <= 48 * MiB
        for i, ref in enumerate(refs):  # every one comes back, from disk when it was spilled
            assert int(nexus.get(ref)[0]) == i
            assert nexus.get(first_and_writable.remote(ref)) == (i, False)
        assert _stats()["restores"] >= 2
    finally:
        nexus.shutdown()


def test_a_full_store_with_everything_pinned_raises_with_the_figures():
    nexus.init(num_cpus=1, object_store_memory=32 * MiB)
    try:
        views = [nexus.get(nexus.put(np.ones(2 * MiB))) for _ in range(2)]  # 32 MiB, all read
        with pytest.raises(ObjectStoreFullError, match=r"capacity .* pinned by readers"):
            nexus.put(np.ones(2 * MiB))
        with pytest.raises(ObjectStoreFullError):
            nexus.get(put_in_worker_and_return_ref.remote(4 * MiB))
        del views
        gc.collect()
        assert int(nexus.get(nexus.put(np.ones(2 * MiB))).sum()) == 2 * MiB, "usable again once views are gone"
    finally:
        nexus.shutdown()


# -- nothing left behind -----------------------------------------------------------------------------


def _cluster_files(pid: int) -> list[str]:
    """The cluster's segments in /dev/shm and its folders (spilled objects) in the temporary directory."""
    shm = [n for n in os.listdir("/dev/shm") if n.startswith(f"nexus-{pid}-")]
    return shm + glob.glob(os.path.join(tempfile.gettempdir(), f"nexus-{pid}-*"))


def test_nothing_left_after_shutdown_or_a_killed_worker():
    nexus.init(num_cpus=2, object_store_memory=32 * MiB)
    try:
        refs = [nexus.put(np.ones(2 * MiB)) for _ in range(3)]  # one spills
        assert _stats()["spills"] >= 1
        pids = nexus.get([_pid_after.remote(0.0) for _ in range(4)])
        died = []
        sub = nexus.event_stream().subscribe(WorkerDied, died.append)
        try:
            os.kill(pids[0], signal.SIGKILL)
            wait_until(lambda: any(e.pid == pids[0] for e in died), timeout=30)  # the driver saw it die
        finally:
            sub.unsubscribe()
        assert [int(nexus.get(r).sum()) for r in refs] == [2 * MiB] * 3
        files = _cluster_files(os.getpid())
        assert any("-arena-" in f for f in files) and any("-spill-" in f for f in files), files
    finally:
        nexus.shutdown()
    assert _cluster_files(os.getpid()) == []


@nexus.remote
def _pid_after(seconds):
    time.sleep(seconds)
    return os.getpid()


def test_nothing_left_after_the_driver_is_killed():
    script = textwrap.dedent(
        """
        import nexus, numpy as np, time
        nexus.init(num_cpus=1, object_store_memory=32 << 20)
        refs = [nexus.put(np.ones(2 << 20)) for _ in range(3)]
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    assert _cluster_files(proc.pid), "the arena, the rings and the spilled object exist while it runs"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    deadline = time.monotonic() + 30
    while _cluster_files(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _cluster_files(proc.pid) == [], "the workers removed the arena, the rings and the spill directory"


@nexus.remote
def _put_in_worker():
    return [nexus.put(np.full(1 << 17, 7.0))]


def test_a_ref_kept_from_an_earlier_cluster_releases_nothing_in_the_next():
    nexus.init(num_cpus=1)
    old = nexus.get(_put_in_worker.remote())[0]
    nexus.shutdown()
    nexus.init(num_cpus=1)
    try:
        new = nexus.get(_put_in_worker.remote())[0]
        assert new.id != old.id, "worker-made ids differ from one cluster to the next"
        del old
        gc.collect()
        assert float(nexus.get(new).sum()) == 7.0 * (1 << 17)
    finally:
        nexus.shutdown()
