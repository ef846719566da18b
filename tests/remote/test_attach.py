"""A driver attached to a running head (``nexus.init(address=...)``): the cluster API through a real head process.

The head runs in a process of its own (``nexus start --head``, a free port of loopback, its own ``$NEXUS_HOME``),
with workers of its own; this test process attaches to it as a driver over ZeroMQ with CURVE. Faults are played
with drivers in subprocesses (killed, or left when the head is killed).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import nexus
from nexus.core.errors import GetTimeoutError

from .test_membership import Home, wait_for


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    home = Home(tmp_path_factory.mktemp("attach") / "nexus-home")
    home.start_head()
    saved = os.environ.get("NEXUS_HOME")
    os.environ["NEXUS_HOME"] = str(home.path)
    try:
        yield home
    finally:
        if saved is None:
            os.environ.pop("NEXUS_HOME", None)
        else:
            os.environ["NEXUS_HOME"] = saved
        left = home.stop_all()
        assert not left, f"daemons left running: {left}"


@pytest.fixture
def attached(head):
    info = nexus.init(address="auto")
    try:
        yield info
    finally:
        nexus.shutdown()


@nexus.remote
def square(x):
    return x * x


@nexus.remote
def fails():
    return 1 / 0


@nexus.remote
def sum_of_squares(n):
    return sum(nexus.get([square.remote(i) for i in range(n)], timeout=30))


@nexus.remote
def total(a):
    return int(a.sum())


@nexus.remote
def total_of(values):
    return sum(values)


@nexus.remote
def ramp(n):
    return np.arange(n, dtype=np.int64)


@nexus.remote
def slow(seconds):
    time.sleep(seconds)
    return seconds


@nexus.remote
class Counter:
    def __init__(self, start):
        self.n = start

    def add(self, k):
        self.n += k
        return self.n


def test_tasks_actors_and_errors_through_an_attached_driver(attached) -> None:
    assert attached["attached_as"].startswith("driver-")
    assert nexus.get([square.remote(i) for i in range(20)], timeout=30) == [i * i for i in range(20)]
    counter = Counter.remote(10)
    counter.add.tell(5)
    assert nexus.get(counter.add.remote(1), timeout=30) == 16, "a tell goes before a later ask"
    with pytest.raises(ZeroDivisionError):
        nexus.get(fails.remote(), timeout=30)
    assert nexus.get(sum_of_squares.remote(10), timeout=60) == sum(i * i for i in range(10)), "tasks submitted by a task"
    named = Counter.options(name="shared").remote(0)
    nexus.get(named.add.remote(2), timeout=30)
    assert nexus.get(nexus.get_actor("shared").add.remote(3), timeout=30) == 5
    nexus.kill(named)


def test_the_state_api_and_the_events_of_an_attached_driver_are_the_heads(attached) -> None:
    from nexus import observe, state
    from nexus.observe import FollowingHub

    refs = [square.remote(i) for i in range(5)]
    assert nexus.get(refs, timeout=30) == [i * i for i in range(5)]
    workers = state.list_workers()
    assert workers and all(w.node_id and w.host for w in workers), "each worker with its node and host"
    assert {w.kind for w in workers if w.alive} >= {"task"}
    hub = observe.hub()
    assert isinstance(hub, FollowingHub) and observe.hub() is hub, "one hub that follows the head's, kept"
    finished = wait_for("the head's events reach the driver", lambda: [e for e in hub.read(0)[0] if e.kind == "finished"])
    assert len(finished) >= 5 and all(e["worker"] in {w.name for w in workers} for e in finished)
    tasks = state.list_tasks(filters=[("name", "=", "square")])
    assert len(tasks) >= 5 and {t.state for t in tasks} == {"finished"}
    workers_now, actors, running = state.placement()
    assert {w.name for w in workers_now} >= {w.name for w in workers if w.alive} and isinstance(running, dict)
    assert state.summary()["workers"] >= 1 and isinstance(state.list_objects(), list)
    trace = observe.timeline()
    assert any(e.get("cat") == "task" and e["name"] == "square" for e in trace["traceEvents"])

    class Collect(observe.ObservationSink):
        def __init__(self):
            self.finished = []

        def on_events(self, events, missed):
            self.finished += [e for e in events if e.kind == "finished"]

    from nexus.cluster.session import current

    fresh = FollowingHub(current())  # (one that has fetched nothing yet)
    sink = fresh.add_sink(Collect())  # from now: what the head records after this, not its history
    try:
        assert nexus.get(square.remote(12), timeout=30) == 144
        wait_for("the sink gets the new task's events", lambda: sink.finished)
        time.sleep(0.3)
        assert len(sink.finished) == 1, [e.data for e in sink.finished]
    finally:
        fresh.close()


def test_put_get_wait_and_large_arrays_both_ways(attached) -> None:
    ref = nexus.put({"a": 1})
    assert nexus.get(ref, timeout=30) == {"a": 1}
    big = np.arange(12_500_000, dtype=np.int64)  # 100 MB: into the head's arena as it arrives, read there in place
    big_ref = nexus.put(big)
    assert nexus.get(total.remote(big_ref), timeout=60) == int(big.sum())
    assert nexus.get(total.remote(big), timeout=60) == int(big.sum()), "a large argument passed by value"
    many = list(range(2_000_000))  # ~10 MB of pickle in the message itself (no out-of-band buffer): one large frame
    assert nexus.get(nexus.put(many), timeout=60) == many
    assert nexus.get(total_of.remote(many), timeout=60) == sum(many)
    back = nexus.get(ramp.remote(5_000_000), timeout=60)  # 40 MB made in a worker, in the arena, sent with its bytes
    assert back.shape == (5_000_000,) and int(back[-1]) == 4_999_999
    refs = [slow.remote(0.01), slow.remote(30)]
    ready, waiting = nexus.wait(refs, num_returns=1, timeout=20)
    assert ready == refs[:1] and waiting == refs[1:]
    with pytest.raises(GetTimeoutError):
        nexus.get(refs[1], timeout=0.2)
    nexus.cancel(refs[1], force=True)


def test_a_gib_put_does_not_silence_the_link(head) -> None:
    """A GiB crosses the link (CURVE-encrypted) and is copied into the head's fresh arena in seconds, longer than
    the link's timeout here (2 s). It goes in parts of 8 MiB, its one buffer cut into views, each part answered;
    the head puts it together and into the arena on its data thread, in steps, while its loop goes on answering
    beats: neither end takes the other for dead (the driver would fail the get with SystemShutdownError).

    (The array is made before attaching: numpy fills it holding the GIL, a second or more with no beat sent, and
    user code that holds the GIL longer than the timeout does make the head let the driver go.)"""
    n = 1 << 27  # 1 GiB of int64
    ones = np.ones(n, dtype=np.int64)
    nexus.init(address="auto")
    try:
        ref = nexus.put(ones)
        del ones
        assert nexus.get(total.remote(ref), timeout=120) == n
        assert nexus.get(square.remote(3), timeout=30) == 9, "the link is still up"
    finally:
        nexus.shutdown()


def test_nodes_seen_from_an_attached_driver_include_the_nodes_that_joined(head, attached) -> None:
    head.start_node("--num-cpus", "1", "--labels", "zone=far")
    nodes = nexus.nodes()
    assert len(nodes) >= 2 and all(n["Alive"] for n in nodes[:2])
    far = [n for n in nodes if n["Labels"] == {"zone": "far"}]
    assert far and far[0]["Resources"].pop("memory") > 0 and far[0]["Resources"] == {"CPU": 1.0}
    wait_for("the joined node's worker attached", lambda: nexus.cluster_resources()["CPU"] == 3.0)
    # its worker processes: one per CPU, and a spare for an actor placed there
    wait_for("the node lists its workers", lambda: [n["Workers"] for n in nexus.nodes() if n["Labels"] == {"zone": "far"}] == [2])
    listed = {n.node_id: n for n in nexus.state.list_nodes()}
    assert listed[far[0]["NodeID"]].workers == 2 and listed[far[0]["NodeID"]].labels == {"zone": "far"}


def test_auto_without_a_head_and_a_key_the_head_refuses_say_so(head, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NEXUS_HOME", str(tmp_path / "empty"))
    with pytest.raises(ConnectionError, match="none runs here"):
        nexus.init(address="auto")
    assert not nexus.is_initialized()
    import zmq

    from nexus.cluster.remote.files import write_private
    from nexus.cluster.remote.keys import load_node_key

    right = load_node_key(head.head_state()["node_key"])
    public, secret = zmq.curve_keypair()
    stranger = str(tmp_path / "stranger.key")
    write_private(stranger, {"head_public": right.head_public, "public": public.decode(), "secret": secret.decode()})
    with pytest.raises(PermissionError, match="refused this key"):
        nexus.init(address=head.head_state()["address"], key=stranger)
    assert not nexus.is_initialized()


DRIVER = textwrap.dedent(
    """
    import sys, time
    import nexus
    from nexus.core.errors import SystemShutdownError

    @nexus.remote
    def slow(seconds):
        time.sleep(seconds)
        return seconds

    nexus.init(address="auto")
    keep = [nexus.put(b"x" * 1000) for _ in range(10)]
    print("attached", flush=True)
    start = time.monotonic()
    try:
        nexus.get(slow.remote(120), timeout=float(sys.argv[1]))
        print("returned", flush=True)
    except SystemShutdownError as exc:
        print(f"raised after {time.monotonic() - start:.1f} s: {exc}", flush=True)
    except Exception as exc:
        print(f"other {type(exc).__name__}: {exc}", flush=True)
    """
)


def _driver(head: Home, get_timeout: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(get_timeout)], env=head.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "attached":
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the driver did not attach: {line}{out}\n{err}")
    return proc


def test_a_killed_driver_is_let_go_by_the_head(head) -> None:
    proc = _driver(head, 60)
    proc.kill()
    proc.communicate()
    log = head.path / "head" / "head.log"
    wait_for("the head let the killed driver go", lambda: "is gone: not heard from" in log.read_text())


def test_a_driver_whose_head_dies_gets_an_error_not_a_hang(tmp_path) -> None:
    home = Home(tmp_path / "nexus-home")
    home.start_head()
    try:
        proc = _driver(home, 120)
        os.kill(home.head_state()["pid"], signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
        assert out.startswith("raised after") and "has not answered" in out, (out, err)
        took = float(out.split()[2])
        assert took < 30, f"the driver waited {took} s"
        wait_for("the head's workers exit with it", lambda: not _workers_of(home), bound=30)
    finally:
        home.nexus("stop", check=False)
        for pid in [*home.daemons(), *_workers_of(home)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _workers_of(home: Home) -> list[int]:
    """Worker processes started by a head of ``home`` (their environment names it)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if b"nexus.cluster.worker" in Path(f"/proc/{entry}/cmdline").read_bytes() and (
                    f"NEXUS_HOME={home.path}".encode() in Path(f"/proc/{entry}/environ").read_bytes()
                ):
                    pids.append(int(entry))
    return pids


def test_a_second_driver_sees_the_first_ones_named_actor(head, attached) -> None:
    Counter.options(name="across", lifetime="detached").remote(100)
    script = "import nexus; nexus.init(address='auto'); print(nexus.get(nexus.get_actor('across').add.remote(1), timeout=30))"
    out = subprocess.run([sys.executable, "-c", script], env=head.env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "101", out.stderr
    nexus.kill(nexus.get_actor("across"))
