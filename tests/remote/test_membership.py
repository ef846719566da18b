"""A head and node agents as real processes over real sockets: join, status, refusal, death, fencing, stop.

Each test has a ``$NEXUS_HOME`` of its own (a temporary folder) and a head on a free port of loopback; the
fixture stops whatever is left and checks that no daemon of that home survives.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nexus.cluster.remote import wire
from nexus.cluster.remote.agent import NodeLink
from nexus.cluster.remote.files import write_private
from nexus.cluster.remote.keys import create_head_keys, load_node_key

TIMEOUT = 2.0  # the heads' node timeout in these tests (seconds)
DETECT_BOUND = 15.0  # a dead node shows as dead by then, however slow the machine (TIMEOUT plus a heartbeat, really)


class Home:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.env = dict(os.environ, NEXUS_HOME=str(path))

    def nexus(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "nexus.manage.cli", *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"nexus {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def start_head(self, *extra: str) -> dict:
        self.nexus("start", "--head", "--port", "0", "--node-timeout", str(TIMEOUT), "--num-cpus", "2", *extra)
        return self.head_state()

    def head_state(self) -> dict:
        return json.loads((self.path / "head" / "state.json").read_text())

    def start_node(self, *extra: str, key: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        state = self.head_state()
        return self.nexus("start", "--address", state["address"], "--key", key or state["node_key"], *extra, check=check)

    def status(self) -> dict:
        return json.loads(self.nexus("status", "--json").stdout)

    def node_pids(self) -> dict[int, int]:
        """node id -> pid of the node agents running now."""
        found = {}
        for path in (self.path / "nodes").glob("node-*.json"):
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(path.read_text())
                found[data["node_id"]] = data["pid"]
        return found

    def stop_all(self) -> list[int]:
        """``nexus stop``, then SIGKILL for any daemon of this home that outlived it; returns those (none, rightly)."""
        self.nexus("stop", check=False)
        left = self.daemons()
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return left

    def daemons(self) -> list[int]:
        """Pids of every daemon started with this home (read from the processes' environments)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                if (
                    b"nexus.cluster.remote.daemon" in cmdline
                    and f"NEXUS_HOME={self.path}".encode() in Path(f"/proc/{entry}/environ").read_bytes()
                ):
                    pids.append(int(entry))
        return pids


@pytest.fixture
def home(tmp_path: Path):
    h = Home(tmp_path / "nexus-home")
    yield h
    left = h.stop_all()
    assert not left, f"daemons left running after `nexus stop`: {left}"


def wait_for(what: str, check, bound: float = DETECT_BOUND):
    deadline = time.monotonic() + bound
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {bound:g} s: {what}")
        time.sleep(0.1)


def by_id(status: dict) -> dict[int, dict]:
    """The nodes by number, the head's own as 0 (its number is its cluster's, drawn at random; joined nodes count from 1)."""
    return {0 if n["head"] else n["node_id"]: n for n in status["nodes"]}


def test_a_head_and_two_nodes_join_show_in_status_and_stop_leaves_nothing(home: Home) -> None:
    state = home.start_head()
    assert state["address"].startswith("127.0.0.1:"), "the head listens on loopback unless told otherwise"
    port = int(state["address"].rsplit(":", 1)[1])
    assert _listening(port) == ["127.0.0.1"]
    out = home.start_node("--num-cpus", "1").stdout
    assert "joined the head" in out
    home.start_node("--num-cpus", "3", "--resources", '{"GPU": 1}', "--labels", "zone=b,rack=7")
    nodes = by_id(home.status())
    assert sorted(nodes) == [0, 1, 2] and all(n["alive"] for n in nodes.values())
    assert all(n["resources"].pop("memory") > 0 for n in nodes.values()), "each has its memory resource, as Ray's"
    assert nodes[0]["head"] and nodes[0]["resources"] == {"CPU": 2.0}
    assert nodes[1]["resources"] == {"CPU": 1.0}
    assert nodes[2]["resources"] == {"CPU": 3.0, "GPU": 1.0} and nodes[2]["labels"] == {"zone": "b", "rack": "7"}
    assert all(abs(n["clock_offset"]) < 1.0 for n in nodes.values()), "one host: the clocks agree"
    for path in [*home.path.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode & 0o077 == 0, f"{path} is open to others ({oct(mode)})"
    text = home.nexus("status").stdout
    assert "3 node(s) alive, 0 peer(s) refused" in text
    stopped = home.nexus("stop").stdout
    assert stopped.count("stopped the node") == 2 and "stopped the head" in stopped
    assert home.daemons() == []
    assert not (home.path / "head" / "state.json").exists() and not list((home.path / "nodes").glob("*.json"))
    assert "nothing to stop" in home.nexus("stop").stdout


def test_a_node_whose_key_is_not_on_the_allow_list_is_refused_at_once_and_counted(home: Home, tmp_path: Path) -> None:
    state = home.start_head()
    right = load_node_key(state["node_key"])
    import zmq

    public, secret = zmq.curve_keypair()
    stranger = str(tmp_path / "stranger.key")
    write_private(stranger, {"head_public": right.head_public, "public": public.decode(), "secret": secret.decode()})
    start = time.monotonic()
    proc = home.start_node(key=stranger, check=False)
    assert proc.returncode != 0
    assert "refused this key" in proc.stderr and "allow-list" in proc.stderr
    assert time.monotonic() - start < 10, "a refusal is told by the handshake, not by a timeout"
    status = home.status()
    assert status["refused"] >= 1 and [n["head"] for n in status["nodes"]] == [True]


def test_a_request_after_the_head_refused_the_connection_says_so_instead_of_hanging(home: Home, tmp_path: Path) -> None:
    """The refusal came before the request: the request is told so (by the connection's monitor), within its timeout."""
    import threading

    import zmq

    from nexus.cluster.remote.agent import KeyRefusedError

    state = home.start_head()
    public, secret = zmq.curve_keypair()
    stranger = str(tmp_path / "stranger.key")
    write_private(
        stranger, {"head_public": load_node_key(state["node_key"]).head_public, "public": public.decode(), "secret": secret.decode()}
    )
    link = NodeLink(load_node_key(stranger), state["address"])
    outcome: list[BaseException] = []

    def ask() -> None:
        try:
            link.request("nodes", 20)
        except BaseException as exc:  # (what the test looks at)
            outcome.append(exc)

    time.sleep(1.0)  # the handshake is refused meanwhile: the connection is gone before anything is sent
    asking = threading.Thread(target=ask, daemon=True)
    asking.start()
    asking.join(30)
    assert not asking.is_alive(), "the request hung on a connection the head refused"
    link.close()  # (not while the request might still use the socket)
    assert len(outcome) == 1 and isinstance(outcome[0], KeyRefusedError), outcome
    assert "refused this key" in str(outcome[0])


def test_a_key_file_of_another_cluster_gets_no_answer_and_says_what_to_check(home: Home, tmp_path: Path) -> None:
    home.start_head()
    other = create_head_keys(str(tmp_path / "other"), "other")
    proc = home.start_node("--num-cpus", "1", key=other.node_key_file, check=False)  # waits out the join timeout (10 s)
    assert proc.returncode != 0 and "no Nexus head answered" in proc.stderr and "is the key file that head's?" in proc.stderr
    assert [n["head"] for n in home.status()["nodes"]] == [True]


def test_a_loose_key_file_is_refused_before_anything_is_sent(home: Home, tmp_path: Path) -> None:
    state = home.start_head()
    loose = tmp_path / "loose.key"
    loose.write_text(Path(state["node_key"]).read_text())
    os.chmod(loose, 0o644)
    proc = home.start_node(key=str(loose), check=False)
    assert proc.returncode != 0 and f"`chmod 600 {loose}`" in proc.stderr
    proc = home.nexus("status", "--address", state["address"], "--key", str(loose), check=False)
    assert proc.returncode != 0 and "chmod 600" in proc.stderr and "Traceback" not in proc.stderr


def test_a_killed_node_is_declared_dead_within_the_timeout_and_its_restart_joins_as_a_new_node(home: Home) -> None:
    home.start_head()
    home.start_node("--num-cpus", "1")
    pid = home.node_pids()[1]
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    dead = wait_for("node 1 declared dead", lambda: not by_id(home.status())[1]["alive"])
    took = time.monotonic() - killed
    assert dead and took >= TIMEOUT - 0.5, f"declared dead after {took:.1f} s, before its timeout"
    assert "not heard from" in by_id(home.status())[1]["why"]
    home.start_node("--num-cpus", "1")
    nodes = by_id(home.status())
    assert nodes[2]["alive"] and not nodes[1]["alive"], "the restarted agent is a new node; the old one stays dead"
    assert sum(n["alive"] for n in nodes.values()) == 2


def test_a_node_cut_off_past_the_timeout_is_fenced_and_joins_again_as_a_new_node(home: Home) -> None:
    """SIGSTOP stands in for a partition: the agent is silent, then speaks again under its old number."""
    home.start_head()
    home.start_node("--num-cpus", "1")
    pid = home.node_pids()[1]
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for("node 1 declared dead", lambda: not by_id(home.status())[1]["alive"])
    finally:
        os.kill(pid, signal.SIGCONT)
    nodes = wait_for("the fenced agent joined again", lambda: (n := by_id(home.status())).get(2, {}).get("alive") and n)
    assert not nodes[1]["alive"], "its old number is never alive again"
    assert nodes[2]["pid"] == pid, "the same agent, under a new number"
    wait_for("its state file names its new number", lambda: home.node_pids() == {2: pid})


def test_malformed_frames_from_an_authenticated_peer_are_dropped_and_counted(home: Home) -> None:
    state = home.start_head()
    link = NodeLink(load_node_key(state["node_key"]), state["address"])
    try:
        bad = [
            b"\xff\xfe not json",
            b"[1, 2]",
            wire.encode("teleport"),
            wire.encode("beat", node_id="one"),
            wire.encode("join", host="h", pid=1, resources={"CPU": -1}, labels={}, wall=0.0),
            wire.encode("join", host="h", pid=1, resources={"CPU": 1}, labels={"a": 1}, wall=0.0),
            b"[" * 200_000 + b"]" * 200_000,  # deep enough to exhaust a recursive parser
            b'{"op": "beat", "node_id": ' + b"9" * 400 + b"}",  # an integer no node has
            b'{"op": "join", "host": "h", "pid": 1, "resources": {}, "labels": {}, "wall": NaN}',
        ]
        for frame in bad:
            link.socket.send(frame)
        link.socket.send_multipart([b"two", b"frames"])
        _op, reply = link.request("nodes", 10)
        assert reply["malformed"] == len(bad) + 1
        assert [n["head"] for n in reply["nodes"]] == [True]
        link.socket.send(b"x" * (wire.MAX_FRAME + 10))  # over ZMQ_MAXMSGSIZE: the head's socket drops this connection
    finally:
        link.close()
    assert home.status()["nodes"][0]["alive"], "the head still answers others"


def test_only_the_connection_a_node_joined_on_speaks_for_it(home: Home) -> None:
    state = home.start_head()
    key = load_node_key(state["node_key"])
    mine, other = NodeLink(key, state["address"]), NodeLink(key, state["address"])
    try:
        node = mine.join({"CPU": 1.0}, {})
        other.socket.send(wire.encode("leave", node_id=node))  # the same key, another connection
        op, _ = other.request("beat", 10, node_id=node, epoch=mine.epoch)
        assert op == "fenced", "a beat for a node from another connection is not taken"
        assert by_id(home.status())[node]["alive"], "nor is its leave"
        assert mine.request("beat", 10, node_id=node, epoch=mine.epoch)[0] == "ack"
        assert mine.request("beat", 10, node_id=node, epoch="an earlier run")[0] == "fenced"
    finally:
        mine.close()
        other.close()


def test_a_node_of_a_head_that_restarted_is_fenced_and_joins_the_new_one(home: Home) -> None:
    import socket

    with socket.socket() as probe:  # a port the restarted head can take again
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    home.nexus("start", "--head", "--port", port, "--node-timeout", str(TIMEOUT), "--num-cpus", "1")
    home.start_node("--num-cpus", "1")
    agent = home.node_pids()[1]
    os.kill(home.head_state()["pid"], signal.SIGKILL)
    wait_for(
        "the killed head's state is stale",
        lambda: (
            home.nexus("start", "--head", "--port", port, "--node-timeout", str(TIMEOUT), "--num-cpus", "1", check=False).returncode == 0
        ),
    )
    nodes = wait_for("the agent joined the new head", lambda: [n for n in home.status()["nodes"] if not n["head"] and n["alive"]])
    assert [n["pid"] for n in nodes] == [agent], "the same agent, a member of the new head's run"


def test_a_nodes_worker_that_exits_is_started_again(home: Home) -> None:
    home.start_head()
    home.start_node("--num-cpus", "2")
    code = "import nexus; nexus.init(address='auto'); print(nexus.cluster_resources()['CPU']); nexus.shutdown()"

    def cpus() -> float:
        return float(subprocess.run([sys.executable, "-c", code], env=home.env, capture_output=True, text=True, timeout=60).stdout)

    wait_for("the node's two workers attached", lambda: cpus() == 4.0)
    agent = home.node_pids()[1]

    def task_workers() -> list[int]:
        children = Path(f"/proc/{agent}/task/{agent}/children").read_text().split()
        return [int(p) for p in children if b"--kind\0task" in Path(f"/proc/{p}/cmdline").read_bytes()]

    first = task_workers()
    assert len(first) == 2
    os.kill(first[0], signal.SIGKILL)
    wait_for("a new worker took its place", lambda: len(now := task_workers()) == 2 and first[0] not in now)
    time.sleep(TIMEOUT + 1)  # the head has let the killed one go by now
    wait_for("the cluster has its CPUs back", lambda: cpus() == 4.0)


def test_a_second_head_on_one_host_is_refused_and_status_without_a_head_says_so(home: Home) -> None:
    home.start_head()
    proc = home.nexus("start", "--head", "--port", "0", check=False)
    assert proc.returncode == 1 and "a head runs here already" in proc.stderr
    state = home.head_state()
    home.nexus("stop")
    proc = home.nexus("status", "--address", state["address"], "--key", state["node_key"], "--timeout", "1", check=False)
    assert proc.returncode == 1 and "no Nexus head answered" in proc.stderr
    proc = home.nexus("status", check=False)
    assert proc.returncode == 1 and "no head runs here" in proc.stderr


def test_bad_start_arguments_say_what_is_expected(home: Home) -> None:
    proc = home.nexus("start", check=False)
    assert proc.returncode == 2 and "--head" in proc.stderr
    proc = home.nexus("start", "--address", "127.0.0.1:1", check=False)
    assert proc.returncode == 2 and "--key" in proc.stderr
    home.start_head()
    proc = home.start_node("--resources", "GPU=1", check=False)
    assert proc.returncode != 0 and "--resources is JSON" in proc.stderr
    proc = home.nexus("start", "--address", "nowhere", "--key", home.head_state()["node_key"], check=False)
    assert proc.returncode != 0 and "HOST:PORT" in proc.stderr


def test_start_takes_what_it_is_not_told_from_the_config_file_and_refuses_a_bad_one(home: Home, tmp_path: Path) -> None:
    config = tmp_path / "nexus.toml"
    config.write_text(f"[head]\nport = 0\nnode_timeout = {TIMEOUT}\nnum_cpus = 1\n")
    home.nexus("start", "--head", "--config", str(config))
    state = home.head_state()
    node = tmp_path / "node.toml"
    node.write_text(f'[node]\naddress = "{state["address"]}"\nkey = "{state["node_key"]}"\nnum_cpus = 2\n')
    home.nexus("start", "--config", str(node), "--num-cpus", "3")  # (an option given wins over the file)
    nodes = wait_for("both nodes", lambda: [n for n in home.status()["nodes"] if n["alive"]] if len(home.status()["nodes"]) == 2 else None)
    assert sorted(n["resources"]["CPU"] for n in nodes) == [1.0, 3.0]
    config.write_text("[head]\nport = 99999\n")
    proc = home.nexus("start", "--head", "--config", str(config), check=False)
    assert proc.returncode == 1 and "head.port: expected an integer from 0 to 65535" in proc.stderr and "Traceback" not in proc.stderr


def _listening(port: int) -> list[str]:
    """The local addresses a TCP socket listens on ``port`` at (from /proc/net/tcp and tcp6)."""
    found = []
    for table, size in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, hexport = local.split(":")
                if state == "0A" and int(hexport, 16) == port:
                    if size == 8:
                        found.append(".".join(str(b) for b in reversed(bytes.fromhex(addr))))
                    else:
                        found.append(addr)
    return found
