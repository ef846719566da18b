"""What another local user can do to a cluster: nothing. Spill folders, ZeroMQ channels, command lines, the janitor."""

from __future__ import annotations

import os
import pathlib
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest

import nexus
from nexus.cluster import api
from nexus.cluster.protocol import pack, unpack
from nexus.cluster.shm_util import check_private
from transports.zmq import ZmqTransport

from ..conftest import wait_until
from .another_user import NOBODY, as_another_user, needs_root

MiB = 1 << 20


class _RunsCode:
    """A pickle that creates ``path`` when it is loaded: what a stranger sends hoping the driver unpickles it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


@pytest.fixture
def shared():
    """A folder both users can write (for the other user's markers); pytest's tmp_path is root's alone."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="nexus-test-shared-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- spilled objects -----------------------------------------------------------------------------


def _make_dirs(paths):
    for path in paths:
        os.mkdir(path, 0o777)
        os.chmod(path, 0o777)
    return True


def _listing(path):
    try:
        return os.listdir(path)
    except PermissionError:
        return "denied"


def test_spilled_objects_go_to_a_private_folder_no_other_user_made_or_can_read():
    needs_root()
    tmp = os.environ.get("TMPDIR", "/tmp")
    pid = os.getpid()
    # Folders another user made first, under the names a spill folder had (or might be guessed to have).
    traps = [os.path.join(tmp, f"nexus-spill-{pid}"), os.path.join(tmp, f"nexus-{pid}-spill-00000000")]
    as_another_user(_make_dirs, traps)
    try:
        nexus.init(num_cpus=1, object_store_memory=32 * MiB)
        try:
            refs = [nexus.put(np.full(2 * MiB, i, dtype=np.int64)) for i in range(3)]  # 48 MiB in a 32 MiB store
            runtime = api._runtime()
            assert runtime.store_stats()["spills"] >= 1
            folder = runtime.spill_folder.path
            st = os.lstat(folder)
            assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) == 0o700
            assert folder not in traps and os.path.basename(folder).startswith(f"nexus-{pid}-spill-")
            assert os.listdir(folder), "the spilled objects are in it"
            assert as_another_user(_listing, folder) == "denied", "another user cannot even list it"
            assert [int(nexus.get(r)[0]) for r in refs] == [0, 1, 2], "spilled objects come back intact"
            assert all(os.listdir(trap) == [] for trap in traps), "nothing went into the other user's folders"
        finally:
            nexus.shutdown()
        assert not os.path.exists(folder), "shutdown removes the spill folder"
        assert all(os.path.isdir(trap) for trap in traps), "the other user's folders are not ours to remove"
    finally:
        for trap in traps:
            os.rmdir(trap)


def test_a_folder_that_is_not_a_private_one_of_ours_is_refused(tmp_path):
    own = tmp_path / "own"
    own.mkdir(mode=0o700)
    check_private(os.lstat(own), str(own))
    open_to_others = tmp_path / "open"
    open_to_others.mkdir()
    open_to_others.chmod(0o755)
    link = tmp_path / "link"
    link.symlink_to(own)
    for path in (open_to_others, link):
        with pytest.raises(PermissionError, match="not a private folder of this user"):
            check_private(os.lstat(path), str(path))
    if os.geteuid() == 0:
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o700)
        os.chown(theirs, NOBODY, NOBODY)
        with pytest.raises(PermissionError, match=f"owner uid {NOBODY}"):
            check_private(os.lstat(theirs), str(theirs))


# -- the janitor ----------------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _make_files(shm_file, folder):
    open(shm_file, "wb").close()
    os.mkdir(folder)
    return True


def test_the_janitor_removes_dead_clusters_files_of_this_user_only():
    needs_root()
    dead = _dead_pid()
    tmp = os.environ.get("TMPDIR", "/tmp")
    theirs = (f"/dev/shm/nexus-{dead}-arena-{dead}-0badf00d", os.path.join(tmp, f"nexus-{dead}-spill-theirs00"))
    ours = (f"/dev/shm/nexus-{dead}-ch-worker-1-{dead}-0badf00d", os.path.join(tmp, f"nexus-{dead}-zmq-ours0000"))
    as_another_user(_make_files, *theirs)
    open(ours[0], "wb").close()
    os.mkdir(ours[1], 0o700)
    open(os.path.join(ours[1], "worker-1.sock"), "w").close()
    try:
        nexus.init(num_cpus=1)  # the janitor runs here; another user's files must not make it fail
        nexus.shutdown()
        assert not any(os.path.exists(p) for p in ours), "a dead cluster's files of ours are removed"
        assert all(os.path.exists(p) for p in theirs), "another user's files are left alone"
    finally:
        os.unlink(theirs[0])
        os.rmdir(theirs[1])
        for path in ours:
            if os.path.isdir(path):
                os.unlink(os.path.join(path, "worker-1.sock"))
                os.rmdir(path)
            elif os.path.exists(path):
                os.unlink(path)


# -- ZeroMQ channels --------------------------------------------------------------------------------


def _stranger(endpoints, payload, shared, seconds):
    """As another user: connect to each channel as a plain peer and as a CURVE server with a made-up key, send a
    pickle that runs code when loaded, and keep whatever arrives, until the test says stop."""
    import zmq

    context = zmq.Context()
    sockets = []
    for endpoint in endpoints:
        plain = context.socket(zmq.PAIR)
        forged = context.socket(zmq.PAIR)
        forged.curve_server = True
        forged.curve_secretkey = zmq.curve_keypair()[1]
        for sock in (plain, forged):
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint)
            sockets.append(sock)
    open(os.path.join(shared, "connected"), "w").close()
    received, sent = [], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not os.path.exists(os.path.join(shared, "stop")):
        for sock in sockets:
            try:
                sock.send(payload, zmq.NOBLOCK)
                sent += 1
            except zmq.Again:
                pass
            try:
                received.append(sock.recv(zmq.NOBLOCK))
            except zmq.Again:
                pass
        time.sleep(0.005)
    context.destroy(linger=0)
    return received, sent


def _in_background(fn, *args):
    outcome = []

    def run():
        try:
            outcome.append(as_another_user(fn, *args))
        except BaseException as exc:  # the test reads it from outcome
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _outcome(outcome):
    assert outcome, "the other user's process gave no answer"
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


@pytest.mark.parametrize("scheme", ["tcp", "ipc"])
def test_a_stranger_first_on_a_zmq_channel_gets_nothing_and_nothing_of_it_is_unpickled(tmp_path, shared, scheme):
    needs_root()
    marker = tmp_path / "code-ran"
    transport = ZmqTransport(scheme)
    conn, spec = transport.open_channel("victim")
    endpoint = spec.address[:-41]  # what a stranger can find (a port scan, the folder's name); not the key
    thread, outcome = _in_background(_stranger, [endpoint], pack(("hello", _RunsCode(str(marker)))), str(shared), 60)
    real = None
    try:
        wait_until(lambda: (shared / "connected").exists(), timeout=30)
        # The driver sends its secrets while the stranger is the only one connected...
        sender = threading.Thread(target=conn.send, args=(pack(("def", b"the function", b"a secret")),))
        sender.start()
        # ...and they reach the real worker, who holds the channel's key: a PAIR socket has one peer.
        real = ZmqTransport.attach(spec)
        real.send(pack(("hello", 1, os.getpid())))
        got = wait_until(real.try_recv, timeout=30)
        assert unpack(got[0]) == ("def", b"the function", b"a secret")
        sender.join(30)
        bodies = []
        deadline = time.monotonic() + 1.0  # what else arrives at the driver in a second of the stranger sending
        while time.monotonic() < deadline:
            message = conn.try_recv()
            if message is not None:
                bodies.append(unpack(message[0]))
            time.sleep(0.005)
    finally:
        (shared / "stop").touch()
        thread.join(60)
        conn.close()
        if real is not None:
            real.close()
        transport.close()
    received, sent = _outcome(outcome)
    assert sent > 0 and received == [], "the stranger's socket never completed a handshake"
    assert bodies == [("hello", 1, os.getpid())], "only the real worker's message reached the driver"
    assert not marker.exists(), "nothing the stranger sent was unpickled"


def test_strangers_on_every_channel_of_a_tcp_cluster_change_nothing(tmp_path, shared):
    needs_root()
    marker = tmp_path / "code-ran"
    nexus.init(num_cpus=2, transport="zmq+tcp")
    try:
        runtime = api._runtime()
        endpoints = [w.conn._socket.last_endpoint.decode() for w in runtime.every_worker if w.alive]
        assert endpoints and all(e.startswith("tcp://127.0.0.1:") for e in endpoints)
        thread, outcome = _in_background(_stranger, endpoints, pack(("done", 1, [], _RunsCode(str(marker)))), str(shared), 60)
        wait_until(lambda: (shared / "connected").exists(), timeout=30)
        for _ in range(20):  # work goes on while the stranger knocks on every channel
            assert nexus.get([_square.remote(i) for i in range(50)], timeout=30) == [i * i for i in range(50)]
        (shared / "stop").touch()
        thread.join(60)
        received, sent = _outcome(outcome)
        assert sent > 0 and received == []
        assert runtime.rejected == 0, "nothing the stranger sent even reached the decoder"
    finally:
        start = time.monotonic()
        nexus.shutdown()
        assert time.monotonic() - start < 20, "shutdown is not held up by the strangers"
    assert not marker.exists()


@nexus.remote
def _square(x):
    return x * x


def _cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().split(b"\0")[:-1]


def _environ_readable(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            f.read()
        return True
    except PermissionError:
        return False


@pytest.mark.parametrize("transport", ["zmq+tcp", "zmq+ipc", "shm"])
def test_no_secret_is_on_a_worker_command_line(transport):
    nexus.init(num_cpus=1, transport=transport)
    try:
        runtime = api._runtime()
        wait_until(lambda: all(w.ready.is_set() for w in runtime.every_worker), timeout=30)
        for w in runtime.every_worker:
            args = _cmdline(w.pid)
            assert args[:3] == [sys.executable.encode(), b"-m", b"nexus.cluster.worker"]
            assert args[3:5] == [str(w.record.index).encode(), w.kind.encode()]
            assert all(a.isdigit() for a in args[5:]) and len(args) == 7, f"only numbers follow: {args}"
            if os.geteuid() == 0:
                assert as_another_user(_environ_readable, w.pid) is False, "nor can another user read its environment"
    finally:
        nexus.shutdown()


def test_init_takes_the_transport_and_its_option():
    info = nexus.init(num_cpus=1, transport="zmq+ipc")
    try:
        assert info["transport"] == "zmq+ipc"
        runtime = api._runtime()
        folder = runtime.transport._folder
        st = os.lstat(folder)
        assert stat.S_IMODE(st.st_mode) == 0o700 and os.path.basename(folder).startswith(f"nexus-{os.getpid()}-zmq-")
        assert all(w.conn._socket.last_endpoint.decode().startswith(f"ipc://{folder}/") for w in runtime.every_worker)
    finally:
        nexus.shutdown()
    assert not os.path.exists(folder)
    with pytest.raises(ValueError, match="scheme is 'ipc' or 'tcp'"):
        nexus.init(num_cpus=1, transport="zmq+udp")
    with pytest.raises(ValueError, match="the 'shm' transport takes no option"):
        nexus.init(num_cpus=1, transport="shm+fast")
    assert not nexus.is_initialized()
    nexus.init(num_cpus=1, transport=ZmqTransport("tcp"))
    try:
        assert nexus.get(_square.remote(7), timeout=30) == 49
        assert api._runtime().transport_name == "zmq"
    finally:
        nexus.shutdown()


def _fetch(url):
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def test_the_metrics_endpoint_is_on_loopback_readable_by_every_local_user_and_shows_no_values():
    needs_root()
    from nexus import observe

    nexus.init(num_cpus=1)
    try:
        secret = "a-value-only-this-user-may-see"
        assert nexus.get(_echo.remote(secret), timeout=30) == secret
        sink = observe.start_metrics_server()
        try:
            url = f"http://127.0.0.1:{sink.port}/metrics"
            wait_until(lambda: "nexus_calls_finished_total" in _fetch(url), timeout=30)
            seen = as_another_user(_fetch, url)  # loopback, no authentication: the Prometheus convention
            assert "nexus_calls_submitted_total" in seen and secret not in seen
            assert sink.server.server_address[0] == "127.0.0.1"
        finally:
            observe.hub().remove_sink(sink)
    finally:
        nexus.shutdown()


@nexus.remote
def _echo(value):
    return value
