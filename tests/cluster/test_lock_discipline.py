"""One actor's worker that stops reading its channel holds up nobody else (issue 16).

The worker is SIGSTOPped (as a worker stuck in one long GIL-holding call would be, for its channel) and a thread
floods the actor with ``tell`` until its channel is full and that thread waits for room. Then another thread's
``get(timeout=2)`` on an unrelated task must keep its timeout, a plain task must still run, and ``shutdown()``
must return within its timeout (3 s): the wait for room may hold up the flooding thread, and no one else.

The cluster runs in a subprocess that bounds each step itself and ends after the first one that overran; the
test kills it at a hang guard otherwise, and removes every process and file of its cluster in any case.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from .conftest import TRANSPORTS

GET_TIMEOUT = 2.0
GET_BOUND = 7.0  # get(timeout=2) returns or raises GetTimeoutError by then, however slow the machine
TASK_BOUND = 10.0  # a plain square(8) takes milliseconds; this only tells "it ran" from "it hung"
SHUTDOWN_TIMEOUT = 3.0  # how long nexus.shutdown() waits for workers (Runtime.shutdown's default timeout)
SHUTDOWN_BOUND = SHUTDOWN_TIMEOUT + 7.0
HANG_GUARD = 30.0  # the whole subprocess: start-up, flood, the bounds above

SCENARIO = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    import nexus
    from nexus.core.errors import GetTimeoutError

    GET_TIMEOUT, GET_BOUND, TASK_BOUND, SHUTDOWN_BOUND = (float(a) for a in sys.argv[3:7])

    def say(*words):
        print(*words, flush=True)

    @nexus.remote
    def square(x):
        return x * x

    @nexus.remote
    class Sink:
        def take(self, data):
            return len(data)

        def pid(self):
            return os.getpid()

    nexus.init(num_cpus=2, transport=sys.argv[1])
    sink = Sink.remote()
    stopped = nexus.get(sink.pid.remote(), timeout=30)
    assert [a.pid for a in nexus.state.list_actors()] == [stopped], nexus.state.list_actors()
    assert nexus.get([square.remote(i) for i in range(4)], timeout=30) == [0, 1, 4, 9]  # the task workers are up
    workers = [w.pid for w in nexus.state.list_workers()]
    assert stopped in workers, workers
    with open(sys.argv[2], "w") as f:  # for the test to clean up after, whatever happens here
        f.write(" ".join(map(str, workers)))
    os.kill(stopped, signal.SIGSTOP)  # alive, but it reads nothing more: its channel fills up

    payload = b"x" * 60_000  # inline (under the 64 KiB inline_max), so the calls themselves fill the channel
    FLOOD = 4000  # 240 MB: more than any channel holds (the shm ring 8 MiB, zmq ~1000 messages)
    sent = [0]
    in_tell_since = [None]
    flood_ended = []

    def flood():
        try:
            for _ in range(FLOOD):
                in_tell_since[0] = time.monotonic()
                sink.take.tell(payload)
                in_tell_since[0] = None
                sent[0] += 1
            flood_ended.append("all sent")
        except BaseException as exc:  # shutdown may end the wait for room with an error: that is fine
            flood_ended.append(exc)

    threading.Thread(target=flood, name="flood", daemon=True).start()
    # Full: most of the 8 MiB ring's worth has been sent, and a tell has been waiting for a second (a tell takes
    # microseconds): the flooding thread waits for room. (Or the flood ended: the calls were all taken, or one
    # was refused; either way the actor's channel is full and stays so.)
    deadline = time.monotonic() + 15
    while not flood_ended:
        since = in_tell_since[0]
        if sent[0] * len(payload) > 6 << 20 and since is not None and time.monotonic() - since > 1:
            break
        assert time.monotonic() < deadline, f"the flood neither filled the channel nor ended: {sent[0]} sent"
        time.sleep(0.05)
    say("full after", sent[0], "tells;", repr(flood_ended[0]) if flood_ended else "the flooding thread waits for room")

    # (a) other calls keep their timeouts while the flooding thread waits
    got = {}
    get_done, task_done = threading.Event(), threading.Event()

    def probe():
        start = time.monotonic()
        try:
            got["get"] = nexus.get(square.remote(7), timeout=GET_TIMEOUT)
        except GetTimeoutError:
            got["get"] = "GetTimeoutError"
        got["get_s"] = time.monotonic() - start
        get_done.set()
        start = time.monotonic()
        got["task"] = nexus.get(square.remote(8), timeout=60)
        got["task_s"] = time.monotonic() - start
        task_done.set()

    threading.Thread(target=probe, name="probe", daemon=True).start()
    if not get_done.wait(GET_BOUND):
        say("frozen: get(timeout=%s) had not returned after %s s" % (GET_TIMEOUT, GET_BOUND))
    else:
        say("get", got["get"], "in %.2f s" % got["get_s"])
        if not task_done.wait(TASK_BOUND):
            say("frozen: a plain task had not returned after %s s" % TASK_BOUND)
        else:
            say("task", got["task"], "in %.2f s" % got["task_s"])

    # (b) shutdown returns within its timeout, whatever the flooding thread (or a frozen probe) is doing
    start = time.monotonic()
    finished = threading.Event()

    def watchdog():
        if not finished.wait(SHUTDOWN_BOUND):
            say("frozen: shutdown() had not returned after %s s" % SHUTDOWN_BOUND)
            os._exit(3)  # the test cleans up what this cluster leaves

    threading.Thread(target=watchdog, name="watchdog", daemon=True).start()
    nexus.shutdown()
    finished.set()
    say("shutdown in %.2f s" % (time.monotonic() - start))
    """
)


def _alive(pid: int) -> bool:
    """Running or stopped, not a zombie (a worker's driver may be gone, leaving it to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(stat) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(stat.split("/")[2]))
    return found


def _cluster_files(driver: int) -> list[str]:
    """Segments and folders of the cluster whose driver is ``driver`` (named nexus-<driver pid>-...)."""
    return [p for where in ("/dev/shm", tempfile.gettempdir()) for p in glob.glob(os.path.join(where, f"nexus-{driver}-*"))]


def _kill_and_remove(driver: int, workers: set[int]) -> None:
    """SIGKILL what is left of the cluster's workers (a stopped one dies of it too), then remove its files."""
    for pid in workers:
        if _alive(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    for path in _cluster_files(driver):
        with contextlib.suppress(OSError):
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_worker_that_stops_reading_holds_up_no_other_call_nor_shutdown(transport: str, tmp_path: Path) -> None:
    pids_file = tmp_path / "workers"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCENARIO, transport, str(pids_file), str(GET_TIMEOUT), str(GET_BOUND), str(TASK_BOUND), str(SHUTDOWN_BOUND)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, to kill at once if it hangs
    )
    workers: set[int] = set()
    hung = False
    try:
        try:
            out, err = proc.communicate(timeout=HANG_GUARD)
        except subprocess.TimeoutExpired:
            hung = True
            workers.update(_children(proc.pid))
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate(timeout=30)
        if pids_file.exists():
            workers.update(int(p) for p in pids_file.read_text().split())
        report = f"exit code {proc.returncode}; it printed:\n{out}\nstderr (end):\n{err[-3000:]}"
        assert not hung, f"the scenario hung for {HANG_GUARD} s (its own bounds did not end it); {report}"
        assert "full after" in out, f"the actor's channel never filled up; {report}"
        assert "frozen" not in out, report
        assert proc.returncode == 0, report
        said = {line.split()[0]: line.split()[1] for line in out.splitlines() if line}
        assert said.get("get") in ("49", "GetTimeoutError"), report
        assert said.get("task") == "64", report
        assert "shutdown" in said, report
        deadline = time.monotonic() + 10
        while (any(_alive(pid) for pid in workers) or _cluster_files(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in workers if _alive(pid)], "shutdown left worker processes running"
        assert not _cluster_files(proc.pid), f"shutdown left files: {_cluster_files(proc.pid)}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill_and_remove(proc.pid, workers)


def test_a_spill_file_is_written_with_the_tables_free(monkeypatch: pytest.MonkeyPatch) -> None:
    """While a put waits for a slow disk to take a spilled object, other threads' calls go on."""
    import threading

    import numpy as np

    import nexus
    from nexus.cluster import store

    mib = 1 << 20
    real_write = store.SpillFolder.write
    writing, release = threading.Event(), threading.Event()

    def slow_write(self: store.SpillFolder, name: str, data: object) -> None:  # a disk that takes its time
        writing.set()
        release.wait(30)
        real_write(self, name, data)

    monkeypatch.setattr(store.SpillFolder, "write", slow_write)

    @nexus.remote
    def square(x: int) -> int:
        return x * x

    nexus.init(num_cpus=1, object_store_memory=32 * mib)
    try:
        kept = [nexus.put(np.full(2 * mib, i, dtype=np.int64)) for i in range(2)]  # 32 MiB: the store is full
        spiller = threading.Thread(target=lambda: kept.append(nexus.put(np.ones(2 * mib))))
        spiller.start()
        assert writing.wait(30), "the put had to spill"
        start = time.monotonic()
        try:
            assert nexus.get(square.remote(9), timeout=20) == 81
            assert int(nexus.get(kept[1])[0]) == 1, "an object in the arena is read meanwhile"
            took = time.monotonic() - start
        finally:
            release.set()
            spiller.join(30)
        assert took < 10, f"a task and a get waited {took:.1f} s for the spill's file"
        assert len(kept) == 3 and float(nexus.get(kept[2])[0]) == 1.0
        assert int(nexus.get(kept[0])[0]) == 0, "the spilled object comes back"
    finally:
        release.set()
        nexus.shutdown()


def test_a_spilled_object_is_read_back_with_the_tables_free(monkeypatch: pytest.MonkeyPatch) -> None:
    """While a get reads a spilled object back from a slow disk, other threads' calls go on."""
    import threading

    import numpy as np

    import nexus
    from nexus.cluster import store

    mib = 1 << 20
    real_read = store.SpillFolder.read_into
    reading, release = threading.Event(), threading.Event()

    def slow_read(self: store.SpillFolder, name: str, view: memoryview) -> None:  # a disk that takes its time
        reading.set()
        release.wait(30)
        real_read(self, name, view)

    @nexus.remote
    def square(x: int) -> int:
        return x * x

    nexus.init(num_cpus=1, object_store_memory=32 * mib)
    try:
        refs = [nexus.put(np.full(2 * mib, i, dtype=np.int64)) for i in range(3)]  # 48 MiB into 32: one spilled
        spilled = [ref for ref in refs if nexus.state.list_objects() and _where(ref) == "spilled"]
        assert spilled, "the first object went to disk"
        monkeypatch.setattr(store.SpillFolder, "read_into", slow_read)
        got: list[int] = []
        reader = threading.Thread(target=lambda: got.append(int(nexus.get(spilled[0])[0])))
        reader.start()
        assert reading.wait(30), "the get reads it back from disk"
        start = time.monotonic()
        try:
            assert nexus.get(square.remote(9), timeout=20) == 81
            took = time.monotonic() - start
        finally:
            release.set()
            reader.join(30)
        assert took < 10, f"a task waited {took:.1f} s for the read of a spilled object"
        assert got == [refs.index(spilled[0])], "the value came back whole"
    finally:
        release.set()
        nexus.shutdown()


def _where(ref: object) -> str:
    import nexus

    oid = f"{ref.id:x}"  # type: ignore[attr-defined]
    return next((o.where for o in nexus.state.list_objects() if o.object_id == oid), "gone")


def test_a_task_whose_argument_is_on_disk_goes_at_once_and_its_worker_asks_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The argument is read back on a helper when the worker asks, never under the lock while the task is sent."""
    import threading

    import numpy as np

    import nexus
    from nexus.cluster import store
    from nexus.cluster.node.store import NodeStore

    mib = 1 << 20
    real_read = store.SpillFolder.read_into
    reading, release = threading.Event(), threading.Event()
    locked_restores: list[int] = []
    real_restore = NodeStore.restore

    def slow_read(self: store.SpillFolder, name: str, view: memoryview) -> None:
        reading.set()
        release.wait(30)
        real_read(self, name, view)

    def restore_under_the_lock(self: NodeStore, oid: int, entry: object) -> object:
        locked_restores.append(oid)
        return real_restore(self, oid, entry)  # type: ignore[arg-type]

    monkeypatch.setattr(NodeStore, "restore", restore_under_the_lock)

    @nexus.remote
    def first(a: object) -> int:
        return int(a[0])  # type: ignore[index]

    @nexus.remote
    def square(x: int) -> int:
        return x * x

    @nexus.remote
    class Reader:
        def first(self, a: object) -> int:
            return int(a[0])  # type: ignore[index]

    nexus.init(num_cpus=2, object_store_memory=32 * mib)
    try:
        reader = Reader.remote()
        refs = [nexus.put(np.full(2 * mib, i, dtype=np.int64)) for i in range(3)]  # 48 MiB into 32: one spilled
        spilled = [ref for ref in refs if _where(ref) == "spilled"]
        assert spilled, "the first object went to disk"
        monkeypatch.setattr(store.SpillFolder, "read_into", slow_read)
        ref = first.remote(spilled[0])
        assert reading.wait(30), "the task's worker asked for its argument, which is read back"
        start = time.monotonic()
        try:
            assert nexus.get(square.remote(9), timeout=20) == 81
            took = time.monotonic() - start
        finally:
            release.set()
        assert took < 10, f"a task waited {took:.1f} s for the read of another task's argument"
        assert nexus.get(ref, timeout=30) == refs.index(spilled[0])
        # an actor's call with an argument on disk, likewise (more puts push one of the others out if need be)
        while not any(_where(r) == "spilled" for r in refs) and len(refs) < 8:
            refs.append(nexus.put(np.full(2 * mib, len(refs), dtype=np.int64)))
        on_disk = next(r for r in refs if _where(r) == "spilled")
        assert nexus.get(reader.first.remote(on_disk), timeout=30) == refs.index(on_disk)
        assert locked_restores == [], "no argument was read back under the lock"
    finally:
        release.set()
        nexus.shutdown()
