"""init and shutdown: options, errors, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import nexus

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


def test_without_init_calls_say_what_to_do():
    @nexus.remote
    def f():
        return 1

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
        nexus.remote(num_returns=0)(lambda: 1)


def test_bad_init_arguments():
    with pytest.raises(ValueError, match="num_cpus"):
        nexus.init(num_cpus=0)
    with pytest.raises(ValueError, match="not supported yet"):
        nexus.init(address="10.0.0.1:6379")
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
    script = textwrap.dedent(
        """
        import os, signal, threading, time, nexus

        @nexus.remote
        def slow():
            time.sleep(30)

        @nexus.remote
        def quick():
            return "still usable"

        nexus.init(num_cpus=2)
        threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        start = time.monotonic()
        try:
            nexus.get(slow.remote())
        except KeyboardInterrupt:
            print("interrupted after", round(time.monotonic() - start, 1))
        print(nexus.get(quick.remote(), timeout=10))
        nexus.shutdown()
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=os.getcwd())
    assert proc.returncode == 0, proc.stderr
    assert "interrupted after 0.5" in proc.stdout or "interrupted after 0.6" in proc.stdout, proc.stdout
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
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = [pid for pid in children if _is_worker(pid)]
        if not alive:
            break
        time.sleep(0.1)
    assert not alive, f"workers outlived their driver: {alive}"
    assert not [n for n in shm_entries() if n.startswith(f"nexus-{proc.pid}-")], "the last worker out removed the segments"


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


def test_cancel_reaches_a_task_already_sent_to_a_busy_worker():
    """With one worker, tasks behind a running one may already sit in its channel; cancel still stops them."""
    nexus.init(num_cpus=1)
    try:
        first = _nap.remote(0.3, "first")
        second = _nap.remote(0, "second")
        third = _nap.remote(0, "third")
        nexus.cancel(third)
        assert nexus.get([first, second], timeout=10) == ["first", "second"]
        with pytest.raises(nexus.core.errors.TaskCancelledError):
            nexus.get(third, timeout=10)
    finally:
        nexus.shutdown()
