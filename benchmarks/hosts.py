"""Across simulated hosts: a head on host 1, a node on host 2, a driver on host 3 (network namespaces, veth pairs).

Measured in one run: how long a node takes to join (``nexus start --address`` until it is a member, its agent's
interpreter start included), tasks and actor calls from the driver on host 3 (one at a time, and submitted
together), and a 100 MiB array put from host 3 and read back there, beside the link's own limit (a plain TCP
stream from host 3 to host 1 over the same veth pairs and bridge). Needs root and iproute2 (the hosts are made and
removed here, as ``tests/remote/hosts.py`` makes them); without them the module reports that it cannot run.
Ray's multi-node figures on the same hosts are not measured yet.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from .harness import BenchmarkError, BenchmarkResult, Figure, peer_result

NAME = "hosts"

DRIVER = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    import nexus

    rounds, n_one, n_many, mib = (int(a) for a in sys.argv[3:7])
    nexus.init(address=sys.argv[1], key=sys.argv[2])

    @nexus.remote
    def f(x):
        return x

    @nexus.remote
    class A:
        def m(self, x):
            return x

    a = A.remote()
    nexus.get([f.remote(i) for i in range(200)] + [a.m.remote(i) for i in range(200)], timeout=120)
    out = {k: [] for k in ("task_one", "task_many", "call_one", "call_many", "put", "get")}
    big = np.ones(mib << 17, dtype=np.int64)  # mib MiB
    for _ in range(rounds):
        t = time.perf_counter()
        for i in range(n_one):
            nexus.get(f.remote(i), timeout=60)
        out["task_one"].append(n_one / (time.perf_counter() - t))
        t = time.perf_counter()
        nexus.get([f.remote(i) for i in range(n_many)], timeout=120)
        out["task_many"].append(n_many / (time.perf_counter() - t))
        t = time.perf_counter()
        for i in range(n_one):
            nexus.get(a.m.remote(i), timeout=60)
        out["call_one"].append(n_one / (time.perf_counter() - t))
        t = time.perf_counter()
        nexus.get([a.m.remote(i) for i in range(n_many)], timeout=120)
        out["call_many"].append(n_many / (time.perf_counter() - t))
        t = time.perf_counter()
        ref = nexus.put(big)
        nexus.wait([ref], timeout=120)  # (a put is acknowledged by the first read: wait asks the head)
        out["put"].append(big.nbytes / (time.perf_counter() - t) / 1e9)
        t = time.perf_counter()
        back = nexus.get(ref, timeout=120)
        out["get"].append(back.nbytes / (time.perf_counter() - t) / 1e9)
        del ref, back
    nexus.shutdown()
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


def _link_rate(hosts: object, mib: int) -> float:
    sink = hosts.popen(1, [sys.executable, "-c", SINK, hosts.address(1)])  # type: ignore[attr-defined]
    try:
        port = sink.stdout.readline().strip()
        out = hosts.python(3, SOURCE, hosts.address(1), port, str(mib))  # type: ignore[attr-defined]
        return float(out.stdout.strip())
    finally:
        sink.kill()
        sink.communicate()


def run(quick: bool) -> BenchmarkResult:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.remote.hosts import Hosts, hosts_available

    why = hosts_available()
    if why is not None:
        raise BenchmarkError(f"simulated hosts cannot be made here: {why}")
    rounds, n_one, n_many, mib = (1, 50, 300, 16) if quick else (3, 500, 5000, 100)
    base = Path(tempfile.mkdtemp(prefix="nexus-bench-hosts-"))
    hosts = Hosts(3, base)
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
        out = hosts.python(3, DRIVER, state["address"], str(hosts.homes[2] / "node.key"), str(rounds), str(n_one), str(n_many), str(mib))
        got = json.loads(out.stdout.strip().splitlines()[-1])
        link = [_link_rate(hosts, mib * 4) for _ in range(rounds)]
    finally:
        for i in (2, 1):
            hosts.nexus(i, "stop", check=False)
        hosts.close()
        shutil.rmtree(base, ignore_errors=True)
    figures = [
        Figure("join", "a node joins (1/s: 1 / seconds)", "/s", joins),
        Figure("task_one", "tasks from another host, one at a time", "/s", got["task_one"]),
        Figure("task_many", "tasks from another host, submitted together", "/s", got["task_many"]),
        Figure("call_one", "actor calls from another host, one at a time", "/s", got["call_one"]),
        Figure("call_many", "actor calls from another host, submitted together", "/s", got["call_many"]),
        Figure("put", f"put of a {mib} MiB array to the head", "GB/s", got["put"]),
        Figure("get", "get of it back", "GB/s", got["get"]),
        Figure("link", "the link itself: a TCP stream host 3 -> host 1", "GB/s", link),
    ]
    return peer_result(
        NAME,
        "Across simulated hosts (network namespaces and veth pairs)",
        figures,
        "ray",
        "Ray",
        quick,
        f"medians of {rounds} round(s) in one run; the driver on host 3, the head and its worker on host 1, a node on host 2",
        notes=["Ray multi-node on the same hosts is not measured yet"],
        available=False,
    )
