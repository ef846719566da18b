"""init and shutdown: options, errors, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import nexus
from nexus.core.errors import SystemShutdownError

from ..conftest import wait_until
from .conftest import shm_entries


def test_init_twice_names_ignore_reinit_error():
    before = shm_entries()
    info = nexus.init(num_cpus=1)
    try:
        assert info["workers"] == 1 and "Nexus local cluster" in info._repr_html_()
        with pytest.raises(RuntimeError, match="ignore_reinit_error"):
            nexus.init()
        assert nexus.init(ignore_reinit_error=True)["workers"] == 1
    finally:
        nexus.shutdown()
    assert not nexus.is_initialized()
    assert shm_entries() <= before, "shutdown removes every segment"
    nexus.shutdown()  # a second shutdown is harmless


def test_without_init_and_without_auto_init_calls_say_what_to_do(monkeypatch):
    @nexus.remote
    def f():
        return 1

    monkeypatch.setenv("NEXUS_AUTO_INIT", "0")  # (else the call starts a cluster: tests/cluster/test_init_as_ray.py)
    with pytest.raises(RuntimeError, match=r"nexus.init\(\)"):
        f.remote()


def test_unknown_option_fails_at_decoration_time():
    with pytest.raises(ValueError, match="unknown option 'num_cpu'"):

        @nexus.remote(num_cpu=1)
        def f():
            return 1

    with pytest.raises(ValueError, match="unknown option"):

        @nexus.remote(max_task_retry=1)
        class A:
            pass

    with pytest.raises(ValueError, match="num_returns"):
        nexus.remote(num_returns=-1)(lambda: 1)


def test_bad_init_arguments(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="num_cpus"):
        nexus.init(num_cpus=-1)  # (0 is a driver with no task worker, as in Ray)
    monkeypatch.setenv("NEXUS_HOME", str(tmp_path))  # no head started here, so no key to take from it
    monkeypatch.delenv("NEXUS_KEY", raising=False)
    with pytest.raises(ValueError, match="needs its key file"):
        nexus.init(address="10.0.0.1:6379")
    with pytest.raises(ValueError, match="HOST:PORT"):
        nexus.init(address="nowhere", key=str(tmp_path / "k"))
    with pytest.raises(ValueError, match="unknown transport 'carrier-pigeon'"):
        nexus.init(num_cpus=1, transport="carrier-pigeon")
    assert not nexus.is_initialized()


def _no_children() -> bool:
    out = subprocess.run(["pgrep", "-f", "nexus.cluster.worker", "-P", str(os.getpid())], capture_output=True, text=True).stdout
    return not out.strip()


def test_shutdown_leaves_no_worker_process():
    nexus.init(num_cpus=2)
    nexus.shutdown()
    assert _no_children()


def test_ctrl_c_during_get_interrupts_the_driver_and_keeps_the_cluster(tmp_path):
    started = tmp_path / "started"
    script = textwrap.dedent(
        f"""
        import os, signal, sys, threading, time, nexus

        signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own Ctrl-C, even if the runner ignores SIGINT
        STARTED = {str(started)!r}

        @nexus.remote
        def slow():
            open(STARTED, "w").close()
            time.sleep(30)

        @nexus.remote
        def quick():
            return "still usable"

        sent = []
        main = threading.main_thread().ident

        def waiting_in_get():
            frame = sys._current_frames().get(main)
            while frame is not None:
                if frame.f_code.co_name == "_wait_object":
                    return True
                frame = frame.f_back
            return False

        def interrupt_once_get_waits():
            # The task runs and the main thread waits in get(): only then is Ctrl-C a Ctrl-C *during get*.
            deadline = time.monotonic() + 30
            while not (os.path.exists(STARTED) and waiting_in_get()) and time.monotonic() < deadline:
                time.sleep(0.01)
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)

        nexus.init(num_cpus=2)
        threading.Thread(target=interrupt_once_get_waits, daemon=True).start()
        begin = time.monotonic()
        try:
            nexus.get(slow.remote())
            print("get returned after", round(time.monotonic() - begin, 1), "s, sent", sent)
        except KeyboardInterrupt:
            print("interrupted after", round(time.monotonic() - sent[0], 1))
        print(nexus.get(quick.remote(), timeout=30))
        nexus.shutdown()
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=os.getcwd())
    assert proc.returncode == 0, proc.stderr
    assert "interrupted after" in proc.stdout, proc.stdout + proc.stderr
    waited = float(proc.stdout.split("interrupted after", 1)[1].split()[0])
    assert waited < 10, f"Ctrl-C took {waited} s to interrupt get(): it waited for the task instead (it sleeps 30 s)"
    assert "still usable" in proc.stdout


def test_workers_exit_when_the_driver_is_killed(tmp_path):
    script = textwrap.dedent(
        """
        import nexus, time
        nexus.init(num_cpus=2)
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert children
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alive = [pid for pid in children if _is_worker(pid)]
        if not alive:
            break
        time.sleep(0.1)
    assert not alive, f"workers outlived their driver: {alive}"
    left = [n for n in os.listdir("/dev/shm") if n.startswith(f"nexus-{proc.pid}-")]
    assert not left, "the last worker out removed the segments"


def _is_worker(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"nexus.cluster.worker" in f.read()
    except OSError:
        return False


@nexus.remote
def _nap(seconds, value):
    time.sleep(seconds)
    return value


def _wait_for_file(path, timeout=60.0):
    deadline = time.monotonic() + timeout  # a failed test must not hold a worker for ever
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)


@nexus.remote
def _held(release, value):
    _wait_for_file(release)
    return value


def test_cancel_reaches_a_task_already_sent_to_a_busy_worker(tmp_path):
    """With one worker, tasks behind a running one may already sit in its channel; cancel still stops them."""
    release = tmp_path / "release"
    nexus.init(num_cpus=1)
    try:
        first = _held.remote(str(release), "first")  # runs until released
        second = _nap.remote(0, "second")
        third = _nap.remote(0, "third")
        nexus.cancel(third)
        release.touch()
        assert nexus.get([first, second], timeout=30) == ["first", "second"]
        with pytest.raises(nexus.core.errors.TaskCancelledError):
            nexus.get(third, timeout=30)
    finally:
        release.touch()
        nexus.shutdown()


@nexus.remote
def _stamp(seconds):
    start = time.monotonic()
    time.sleep(seconds)
    return start, time.monotonic()


@nexus.remote
def _meet(mine, other):
    """Say it runs, then wait for the other task to say so: both return True only if they ran at the same time."""
    open(mine, "w").close()
    deadline = time.monotonic() + 20
    while not os.path.exists(other) and time.monotonic() < deadline:
        time.sleep(0.005)
    return os.path.exists(other)


@nexus.remote
class _Holder:
    def ping(self):
        return "pong"

    def slow(self, seconds):
        time.sleep(seconds)
        return seconds

    def held(self, release):
        _wait_for_file(release)
        return "released"


def _overlaps(spans):
    return sum(1 for i, (s1, e1) in enumerate(spans) for s2, e2 in spans[i + 1 :] if s1 < e2 and s2 < e1)


def test_num_cpus_and_resources_are_respected(tmp_path):
    nexus.init(num_cpus=2, resources={"GPU": 1})
    try:
        a, b = str(tmp_path / "a"), str(tmp_path / "b")
        plain = nexus.get([_meet.remote(a, b), _meet.remote(b, a)], timeout=60)
        assert plain == [True, True], "two one-CPU tasks run side by side on two CPUs"
        wide = nexus.get([_stamp.options(num_cpus=2).remote(0.2) for _ in range(2)], timeout=20)
        assert _overlaps(wide) == 0, "a two-CPU task has the cluster to itself"
        gpu = nexus.get([_stamp.options(resources={"GPU": 1}).remote(0.2) for _ in range(2)], timeout=20)
        assert _overlaps(gpu) == 0, "one GPU: one task at a time"
        with pytest.raises(ValueError, match="can never run: it needs 3 CPU and the cluster has 2"):
            _stamp.options(num_cpus=3).remote(0)
        with pytest.raises(ValueError, match="needs 1 TPU and the cluster has 0"):
            _stamp.options(resources={"TPU": 1}).remote(0)
        holder = _Holder.options(num_gpus=1).remote()
        assert nexus.get(holder.ping.remote()) == "pong"
        later = _Holder.options(resources={"GPU": 1}).remote()  # the GPU is held: it waits for it, as in Ray
        answer = later.ping.remote()
        with pytest.raises(nexus.core.errors.GetTimeoutError):
            nexus.get(answer, timeout=0.5)
        (waiting,) = [a for a in nexus.state.list_actors() if a.state == "starting" and a.waiting_for]
        assert waiting.waiting_for == "_Holder needs 1 GPU, more than is free now", waiting
        nexus.kill(holder)
        assert nexus.get(answer, timeout=20) == "pong", "placed once the dead actor's GPU is free"
        assert all(a.waiting_for is None for a in nexus.state.list_actors())
        with pytest.raises(ValueError, match="can never run: it needs 2 GPU and the cluster has 1"):
            _Holder.options(num_gpus=2).remote()
    finally:
        nexus.shutdown()


def test_max_pending_calls(tmp_path):
    release = tmp_path / "release"
    nexus.init(num_cpus=1)
    try:
        holder = _Holder.options(max_pending_calls=2).remote()
        first = holder.held.remote(str(release))  # pending until released
        second = holder.slow.remote(0)
        try:
            with pytest.raises(nexus.core.errors.PendingCallsLimitExceededError, match="max_pending_calls"):
                holder.slow.remote(0)
        finally:
            release.touch()
        assert nexus.get([first, second], timeout=30) == ["released", 0]
        assert nexus.get(holder.slow.remote(0), timeout=30) == 0, "room again once results are in"
    finally:
        nexus.shutdown()


def test_workers_busy_in_user_code_exit_when_the_driver_is_killed(tmp_path):
    started = str(tmp_path / "started")
    script = textwrap.dedent(
        f"""
        import nexus, os, time
        nexus.init(num_cpus=1)
        @nexus.remote
        def spin():
            open({started!r}, "w").close()
            while True:
                pass
        ref = spin.remote()
        deadline = time.monotonic() + 30
        while not os.path.exists({started!r}) and time.monotonic() < deadline:
            time.sleep(0.01)
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert os.path.exists(started), "the task was running when its driver was killed"
    deadline = time.monotonic() + 30
    while [pid for pid in children if _is_worker(pid)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if _is_worker(pid)], "a worker stuck in a task noticed its driver's death"


def test_init_removes_what_clusters_killed_with_their_workers_left():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = f"/dev/shm/nexus-{dead.pid}-arena-{dead.pid}-0badf00d"
    open(leftover, "wb").close()
    nexus.init(num_cpus=1)
    try:
        assert not os.path.exists(leftover), "the janitor removed a dead cluster's segment"
    finally:
        nexus.shutdown()


def test_shutdown_does_not_wait_for_workers_stuck_in_user_code(tmp_path):
    nexus.init(num_cpus=1)
    try:

        @nexus.remote
        class Stuck:
            async def block(self, started, seconds):
                open(started, "w").close()
                time.sleep(seconds)  # blocks the actor's event loop

            def block_sync(self, started, seconds):
                open(started, "w").close()
                time.sleep(seconds)

            def ping(self):
                return 1

        @nexus.remote
        def long(started, seconds):
            open(started, "w").close()
            time.sleep(seconds)

        async_actor = Stuck.remote()
        sync_actor = Stuck.remote()
        assert nexus.get([async_actor.ping.remote(), sync_actor.ping.remote()], timeout=20) == [1, 1]
        started = [tmp_path / name for name in ("async", "sync", "task")]
        async_actor.block.remote(str(started[0]), 600)
        sync_actor.block_sync.remote(str(started[1]), 600)
        long.remote(str(started[2]), 600)
        wait_until(lambda: all(path.exists() for path in started), timeout=30)  # all three are stuck in user code
        workers = [w.proc for w in nexus.cluster.api._runtime().every_worker]
    finally:
        start = time.monotonic()
        nexus.shutdown()
    assert time.monotonic() - start < 30, "shutdown hung"
    codes = {proc.pid: proc.returncode for proc in workers}
    # -SIGKILL would be shutdown giving up on a worker; 0 is one that took the exit message (its monitor thread does)
    assert all(code == 0 for code in codes.values()), f"workers that did not leave on their own: {codes}"
    assert _no_children()


def test_get_and_wait_in_other_threads_raise_when_the_cluster_shuts_down():
    nexus.init(num_cpus=1)
    outcomes: dict[str, BaseException | object] = {}
    try:
        never = _nap.remote(600, None)
        threads = []
        for name, call in (("wait", lambda: nexus.wait([never])), ("get", lambda: nexus.get(never))):

            def run(name=name, call=call):
                try:
                    outcomes[name] = call()
                except BaseException as exc:  # what it raised is what the test checks
                    outcomes[name] = exc

            threads.append(threading.Thread(target=run))
        for thread in threads:
            thread.start()
        runtime = nexus.cluster.api._runtime()
        wait_until(lambda: len(runtime.waits) == 1 and runtime.want_role == 1, timeout=30)  # both are waiting
    finally:
        nexus.shutdown()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive(), "a wait or get outlived the cluster"
    assert isinstance(outcomes["wait"], SystemShutdownError), outcomes
    assert isinstance(outcomes["get"], SystemShutdownError), outcomes
