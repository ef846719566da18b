"""Across simulated hosts: a head on host 1, a node on host 2, a driver on host 3 (network namespaces, veth pairs).

Measured in one run: how long a node takes to join (``nexus start --address`` until it is a member, its agent's
interpreter start included), tasks and actor calls from the driver on host 3 (one at a time, and submitted
together), and arrays of 100 MiB and 1 GiB moved between hosts 2 and 3 (put on host 3 and read by a task on host
2; made by a task on host 2 and got on host 3), beside the link's own limit (a plain TCP stream from host 3 to
host 1 over the same veth pairs and bridge) and that stream through ZeroMQ's CURVE encryption. Needs root and
iproute2 (the hosts are made and removed here, as ``tests/remote/hosts.py`` makes them); without them the module
reports that it cannot run. With Ray installed, the same script runs against Ray multi-node on the same hosts
(``ray start --head`` on host 1, ``ray start --address`` on hosts 2 and 3), after the Nexus cluster is stopped.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from .harness import BenchmarkError, BenchmarkResult, Figure, Target, peer_result, progress

NAME = "hosts"

# The same measures for both sides, as one script with a small adapter per framework (``X``: nexus or ray).
# Transfers: an array put by the driver on host 3 and read by a task on host 2, and one made by a task on host 2
# and got by the driver (the task bound to host 2 with its node affinity, on both sides).
DRIVER = textwrap.dedent(
    """
    import json, os, sys, time
    import numpy as np

    side, address, key = sys.argv[1:4]
    rounds, n_one, n_many = (int(a) for a in sys.argv[4:7])
    sizes = [int(m) for m in sys.argv[7].split(",")]
    if side == "nexus":
        import nexus as X
        X.init(address=address, key=key)
        hosts = {n["NodeManagerHostname"]: n["NodeID"] for n in X.nodes() if n["Alive"]}
        Affinity = X.NodeAffinitySchedulingStrategy
    else:
        import ray as X
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy as Affinity
        X.init(address=address, _node_ip_address=key, log_to_driver=False, configure_logging=False)  # (key: this host's address)
        hosts = {"host" + n["NodeManagerAddress"].rsplit(".", 1)[1]: n["NodeID"] for n in X.nodes() if n["Alive"]}
    on_host2 = Affinity(hosts["host2"], soft=False)
    fetch = {"fetch_local": False} if side == "ray" else {}  # (Ray's wait pulls the object here unless told not to)

    @X.remote
    def f(x):
        return x

    @X.remote
    def make(mib):
        return np.ones(mib << 17, dtype=np.int64)

    @X.remote
    def read(a):
        return int(a[0] + a[-1])

    @X.remote
    class A:
        def m(self, x):
            return x

    a = A.remote()
    X.get([f.remote(i) for i in range(200)] + [a.m.remote(i) for i in range(200)], timeout=300)
    out = {k: [] for k in ("task_one", "task_many", "call_one", "call_many")}
    for _ in range(rounds):
        t = time.perf_counter()
        for i in range(n_one):
            X.get(f.remote(i), timeout=60)
        out["task_one"].append(n_one / (time.perf_counter() - t))
        t = time.perf_counter()
        X.get([f.remote(i) for i in range(n_many)], timeout=300)
        out["task_many"].append(n_many / (time.perf_counter() - t))
        t = time.perf_counter()
        for i in range(n_one):
            X.get(a.m.remote(i), timeout=60)
        out["call_one"].append(n_one / (time.perf_counter() - t))
        t = time.perf_counter()
        X.get([a.m.remote(i) for i in range(n_many)], timeout=300)
        out["call_many"].append(n_many / (time.perf_counter() - t))
    reader, maker = read.options(scheduling_strategy=on_host2), make.options(scheduling_strategy=on_host2)
    X.get(reader.remote(np.ones(4)), timeout=120)
    for mib in sizes:
        put, got = out.setdefault(f"put_read_{mib}", []), out.setdefault(f"made_get_{mib}", [])
        big = np.ones(mib << 17, dtype=np.int64)
        for _ in range(rounds):
            t = time.perf_counter()
            assert X.get(reader.remote(X.put(big)), timeout=600) == 2
            put.append(big.nbytes / (time.perf_counter() - t) / 1e9)
            ref = maker.remote(mib)
            X.wait([ref], timeout=600, **fetch)  # made, not yet here
            t = time.perf_counter()
            back = X.get(ref, timeout=600)
            got.append(back.nbytes / (time.perf_counter() - t) / 1e9)
            del ref, back
        del big
    X.shutdown()
    print(json.dumps(out))
    """
)

SINK = textwrap.dedent(
    """
    import socket, sys
    s = socket.create_server((sys.argv[1], 0))
    print(s.getsockname()[1], flush=True)
    c, _ = s.accept()
    buf = bytearray(1 << 20)
    while c.recv_into(buf):
        pass
    """
)

SOURCE = textwrap.dedent(
    """
    import socket, sys, time
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
    chunk = b"x" * (1 << 20)
    total = int(sys.argv[3]) << 20
    t = time.perf_counter()
    sent = 0
    while sent < total:
        c.sendall(chunk)
        sent += len(chunk)
    c.shutdown(socket.SHUT_WR)
    c.recv(1)
    print(sent / (time.perf_counter() - t) / 1e9)
    """
)


# The same stream through ZeroMQ with CURVE, as every Nexus link between hosts is (1 MiB frames, as objects go):
# what encryption leaves of the link on these cores.
CURVE_SINK = textwrap.dedent(
    """
    import sys, zmq
    public, secret = zmq.curve_keypair()
    s = zmq.Context().socket(zmq.ROUTER)
    s.curve_server, s.curve_publickey, s.curve_secretkey = True, public, secret
    s.setsockopt(zmq.RCVHWM, 0)
    port = s.bind_to_random_port("tcp://" + sys.argv[1])
    print(port, public.decode(), flush=True)
    ident, first = s.recv_multipart()
    n = 0
    while n < int(first):
        n += len(s.recv_multipart()[1])
    s.send_multipart([ident, b"done"])
    """
)

CURVE_SOURCE = textwrap.dedent(
    """
    import sys, time, zmq
    public, secret = zmq.curve_keypair()
    c = zmq.Context().socket(zmq.DEALER)
    c.curve_serverkey, c.curve_publickey, c.curve_secretkey = sys.argv[3].encode(), public, secret
    c.setsockopt(zmq.SNDHWM, 0)
    c.connect(f"tcp://{sys.argv[1]}:{sys.argv[2]}")
    total = int(sys.argv[4]) << 20
    chunk = b"x" * (1 << 20)
    c.send(str(total).encode())
    t = time.perf_counter()
    for _ in range(total >> 20):
        c.send(chunk, copy=False)
    c.recv()
    print(total / (time.perf_counter() - t) / 1e9)
    """
)


def _curve_rate(hosts: object, mib: int) -> float:
    sink = hosts.popen(1, [sys.executable, "-c", CURVE_SINK, hosts.address(1)])  # type: ignore[attr-defined]
    try:
        port, public = sink.stdout.readline().split()
        out = hosts.python(3, CURVE_SOURCE, hosts.address(1), port, public, str(mib))  # type: ignore[attr-defined]
        return float(out.stdout.strip())
    finally:
        sink.kill()
        sink.communicate()


def _link_rate(hosts: object, mib: int) -> float:
    sink = hosts.popen(1, [sys.executable, "-c", SINK, hosts.address(1)])  # type: ignore[attr-defined]
    try:
        port = sink.stdout.readline().strip()
        out = hosts.python(3, SOURCE, hosts.address(1), port, str(mib))  # type: ignore[attr-defined]
        return float(out.stdout.strip())
    finally:
        sink.kill()
        sink.communicate()


def _ray_side(hosts: Any, base: Path, argv: list[str]) -> tuple[list[float], dict[str, list[float]]]:
    """Ray multi-node on the same hosts: a head on host 1, a node on host 2 (its join timed), a node of no CPUs on
    host 3 for the driver (a Ray driver needs a raylet of its own host). Each host has its own temporary folder."""
    ray = str(Path(sys.executable).parent / "ray")
    address = f"{hosts.address(1)}:6379"

    def on(i: int, *args: str) -> list[str]:
        return ["env", f"TMPDIR={base / f'ray{i}'}", "RAY_USAGE_STATS_ENABLED=0", *args]

    def node(i: int) -> list[str]:
        return [f"--node-ip-address={hosts.address(i)}"]

    for i in (1, 2, 3):
        (base / f"ray{i}").mkdir(mode=0o700)
    common = ["--disable-usage-stats", "--object-store-memory=2500000000"]  # (within each host's 3 GB /dev/shm)
    try:
        hosts.run(
            1, on(1, ray, "start", "--head", *node(1), "--port=6379", "--include-dashboard=false", "--num-cpus=1", *common), timeout=300
        )
        t = time.perf_counter()
        hosts.run(2, on(2, ray, "start", f"--address={address}", *node(2), "--num-cpus=1", *common), timeout=300)
        joins = [1 / (time.perf_counter() - t)]
        hosts.run(3, on(3, ray, "start", f"--address={address}", *node(3), "--num-cpus=0", *common), timeout=300)
        out = hosts.run(3, on(3, sys.executable, "-c", DRIVER, "ray", address, hosts.address(3), *argv), timeout=1800)
        return joins, json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        for i in (3, 2, 1):
            hosts.run(i, on(i, ray, "stop", "--force"), check=False, timeout=120)


def run(quick: bool) -> BenchmarkResult:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.remote.hosts import Hosts, hosts_available

    why = hosts_available()
    if why is not None:
        raise BenchmarkError(f"simulated hosts cannot be made here: {why}")
    try:
        import ray
    except ImportError:
        ray = None
    rounds, n_one, n_many, sizes = (1, 50, 300, [16]) if quick else (3, 500, 5000, [100, 1024])
    argv = [str(rounds), str(n_one), str(n_many), ",".join(map(str, sizes))]
    base = Path(tempfile.mkdtemp(prefix="nexus-bench-hosts-"))
    hosts = Hosts(3, base)
    peer: dict[str, list[float]] = {}
    try:
        hosts.nexus(1, "start", "--head", "--bind", hosts.address(1), "--port", "0", "--num-cpus", "1")
        state = json.loads((hosts.homes[0] / "head" / "state.json").read_text())
        for i in (2, 3):
            key = hosts.homes[i - 1] / "node.key"
            shutil.copyfile(state["node_key"], key)
            key.chmod(0o600)
        joins = []
        t = time.perf_counter()
        hosts.nexus(2, "start", "--address", state["address"], "--key", str(hosts.homes[1] / "node.key"), "--num-cpus", "1")
        joins.append(1 / (time.perf_counter() - t))
        out = hosts.run(3, [sys.executable, "-c", DRIVER, "nexus", state["address"], str(hosts.homes[2] / "node.key"), *argv], timeout=1800)
        got = json.loads(out.stdout.strip().splitlines()[-1])
        for i in (2, 1):
            hosts.nexus(i, "stop", check=False)
        if ray is not None:
            progress(f"{NAME}: Ray multi-node on the same hosts (its nodes take seconds to start)")
            peer_joins, peer = _ray_side(hosts, base, argv)
            peer["join"] = peer_joins
        link = [_link_rate(hosts, max(sizes) * 2) for _ in range(rounds)]
        curve = [_curve_rate(hosts, max(sizes) * 2) for _ in range(rounds)]
    finally:
        for i in (2, 1):
            hosts.nexus(i, "stop", check=False)
        hosts.close()
        shutil.rmtree(base, ignore_errors=True)
    got["join"] = joins

    def figure(key: str, label: str, unit: str, target: Target | None) -> Figure:
        return Figure(key, label, unit, got[key], peer.get(key), target=target)

    figures = [
        figure("join", "a node joins (1/s: 1 / seconds)", "/s", Target.at_least(1.0, "/s")),
        figure("task_one", "tasks from another host, one at a time", "/s", Target.ratio(10)),
        figure("task_many", "tasks from another host, submitted together", "/s", Target.ratio(10)),
        figure("call_one", "actor calls from another host, one at a time", "/s", Target.ratio(10)),
        figure("call_many", "actor calls from another host, submitted together", "/s", Target.ratio(10)),
    ]
    for mib in sizes:
        figures.append(figure(f"put_read_{mib}", f"a {mib} MiB array put on host 3, read by a task on host 2", "GB/s", Target.ratio(2)))
        figures.append(figure(f"made_get_{mib}", f"a {mib} MiB array made by a task on host 2, got on host 3", "GB/s", Target.ratio(2)))
    figures.append(Figure("link", "the link itself: a TCP stream host 3 -> host 1", "GB/s", link))
    figures.append(Figure("curve", "the link through ZeroMQ's CURVE (encrypted, 1 MiB frames) host 3 -> host 1", "GB/s", curve))
    best = max(max(f.nexus_samples) for f in figures if f.unit == "GB/s" and f.key not in ("link", "curve"))
    return peer_result(
        NAME,
        "Across simulated hosts (network namespaces and veth pairs), beside Ray multi-node",
        figures,
        "ray",
        "Ray",
        quick,
        f"medians of {rounds} round(s) in one run; the driver on host 3, the head (or Ray's) with one worker on host 1, "
        "a node of one CPU on host 2; Nexus first, then Ray on the same hosts",
        notes=[
            f"the best Nexus transfer is {best / statistics.median(link):.0%} of the link (target: 70%), "
            f"{best / statistics.median(curve):.0%} of the link through CURVE, which every Nexus link between hosts is "
            "(Ray's are not encrypted)",
            "a value made on host 2, or put by the driver on host 3, goes to the other host directly (one crossing, "
            "not through the head on host 1)",
        ],
        available=ray is not None,
        ray=getattr(ray, "__version__", "not installed"),
    )
