"""Benchmark "services": failure detection, placement and virtual actors.

phi detection            seconds from a member's last heartbeat to its suspicion, per threshold, on a simulated
                         lossy, jittery link (heartbeats every 0.5 s, N(0, 0.1 s) jitter, 5% lost; seeded)
false suspicions         suspicions per member-hour of such a link while the member is alive, per threshold
identities moved         the share of identities that move when an 11th node joins 10 (1/11 is the least possible)
virtual actor calls      calls one at a time to a virtual actor, beside the same class as a plain actor (ratio)
first call               the first call to an identity (its activation) beside a plain actor's creation and call
real beats               (full runs) a real head and two nodes (`nexus start`) on loopback for a minute while two
                         other processes keep both cores busy: the suspicions phi 8 raised (false: every node
                         lived), then a node's agent stopped (SIGSTOP): the silence before the head suspected it

No peer here: Ray has no virtual actors; the ratio column is the virtual actor against the plain one.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .harness import BenchmarkResult, Figure, rate

NAME = "services"


def _phi_run(threshold: float, hours: float, seed: int) -> tuple[float, float]:
    """(mean detection seconds after the member stops, false suspicions per hour while it lives)."""
    from nexus.cluster.services.phi import PhiAccrualDetector

    rng = random.Random(seed)
    detector = PhiAccrualDetector(threshold=threshold, min_std=0.05)
    now, false = 0.0, 0
    detector.heartbeat(now)
    end = hours * 3600
    sent = 0.0
    while sent < end:
        sent += 0.5
        if rng.random() < 0.05:
            continue  # lost
        arrival = max(now, sent + abs(rng.gauss(0.0, 0.1)))
        if detector.suspected(arrival - 1e-6):  # (suspected in the gap: phi was over the threshold before it came)
            false += 1
        detector.heartbeat(arrival)
        now = arrival
    detections = []
    for _ in range(50):  # the member stops after its last beat: when does phi cross the threshold?
        t = now
        while not detector.suspected(t):
            t += 0.01
        detections.append(t - now)
        now += 0.5
        detector.heartbeat(now)
    return sum(detections) / len(detections), false / hours


def _moved(strategy_name: str, nodes: int, identities: int) -> float:
    from nexus.cluster.services.placement import load_strategy

    names = [f"node-{i}" for i in range(nodes)]
    keys = [f"user-{i}" for i in range(identities)]
    strategy = load_strategy(strategy_name)
    strategy.set_nodes(names)
    before = [strategy.owner(k) for k in keys]
    strategy.set_nodes([*names, "node-new"])
    after = [strategy.owner(k) for k in keys]
    return sum(a != b for a, b in zip(before, after, strict=True)) / identities


def _at_scale(nodes: int, identities: int) -> list[str]:
    """Membership and placement past this machine, in-process: cost per change and per lookup, memory."""
    import tracemalloc

    from nexus.cluster.services.membership import InMemoryMembership, Member
    from nexus.cluster.services.placement import load_strategy

    notes = []
    names = [f"node-{i:04d}" for i in range(nodes)]
    keys = [f"user-{i}" for i in range(identities)]
    for name in ("consistent_hash", "rendezvous", "static"):
        strategy = load_strategy(name, **({"partitions": 4096} if name == "static" else {}))
        start = time.perf_counter()
        strategy.set_nodes(names)
        first = time.perf_counter() - start
        start = time.perf_counter()
        strategy.set_nodes(names[:-1])
        change = time.perf_counter() - start
        sample = keys if name != "rendezvous" else keys[: identities // 100]  # (HRW is O(nodes) a lookup)
        start = time.perf_counter()
        for key in sample:
            strategy.owner(key)
        lookup = (time.perf_counter() - start) / len(sample)
        notes.append(
            f"{name} at {nodes:,} nodes: {first * 1e3:,.0f} ms to build, {change * 1e3:,.0f} ms a change, "
            f"{lookup * 1e6:,.1f} us a lookup ({len(sample):,} identities)"
        )
    clock = [0.0]
    membership = InMemoryMembership(lambda: clock[0])
    tracemalloc.start()
    for node in names:
        membership.join(Member(node), ttl=5.0)
    size, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    start = time.perf_counter()
    for _ in range(10):
        clock[0] += 1.0
        for node in names:
            membership.renew(node)
        membership.tick()
    per_round = (time.perf_counter() - start) / 10
    notes.append(
        f"in-memory membership of {nodes:,}: {size / nodes:,.0f} B a member; a beat round (every renewal and a tick) "
        f"{per_round * 1e3:,.1f} ms"
    )
    return notes


def _calls(n: int, many: int) -> tuple[float, ...]:
    """(virtual calls/s, plain calls/s, virtual first call/s, plain create+call/s, the same two of shared hosting,
    activations/s of ``many`` identities in one host, KiB of the host's memory an activation), one at a time."""
    import nexus

    @nexus.remote
    class Counter:
        virtual_idle = 600.0

        def __init__(self) -> None:
            self.n = 0

        def incr(self) -> int:
            self.n += 1
            return self.n

    @nexus.remote
    class Hosted(Counter._cls):  # type: ignore[misc,name-defined]
        virtual_hosting = "shared"

    nexus.init(num_cpus=2)
    try:
        start = time.perf_counter()
        virtual = Counter.virtual("bench-0")
        nexus.get(virtual.incr.remote())
        first_virtual = 1 / (time.perf_counter() - start)
        start = time.perf_counter()
        plain = Counter.remote()
        nexus.get(plain.incr.remote())
        first_plain = 1 / (time.perf_counter() - start)
        for handle in (virtual, plain):
            for _ in range(50):
                nexus.get(handle.incr.remote())
        start = time.perf_counter()
        for _ in range(n):
            nexus.get(virtual.incr.remote())
        v = rate(n, time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(n):
            nexus.get(plain.incr.remote())
        p = rate(n, time.perf_counter() - start)
        start = time.perf_counter()
        hosted = Hosted.virtual("bench-0")
        nexus.get(hosted.incr.remote())  # (the host is made first: a worker started)
        first_host = 1 / (time.perf_counter() - start)
        start = time.perf_counter()
        nexus.get(Hosted.virtual("bench-1").incr.remote())  # (an instance in the host there)
        first_hosted = 1 / (time.perf_counter() - start)
        for _ in range(50):
            nexus.get(hosted.incr.remote())
        start = time.perf_counter()
        for _ in range(n):
            nexus.get(hosted.incr.remote())
        h = rate(n, time.perf_counter() - start)
        (host,) = [a for a in nexus.state.list_actors() if (a.name or "").startswith("virtual-host:") and a.state == "alive"]
        before = _rss_kib(host.pid)
        start = time.perf_counter()
        nexus.get([Hosted.virtual(f"many-{i}").incr.remote() for i in range(many)], timeout=600)
        activations = rate(many, time.perf_counter() - start)
        per = (_rss_kib(host.pid) - before) / many
        return v, p, first_virtual, first_plain, h, first_hosted, activations, per, first_host
    finally:
        nexus.shutdown()


def _rss_kib(pid: int | None) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return float(line.split()[1])
    return 0.0


def _real_beats(seconds: float) -> list[str]:
    """Suspicions of phi on a real head's beats with both cores busy, and its detection of a stopped node."""
    with tempfile.TemporaryDirectory() as folder:
        env = dict(os.environ, NEXUS_HOME=folder)

        def cli(*args: str) -> None:
            subprocess.run([sys.executable, "-m", "nexus.manage.cli", *args], env=env, check=True, capture_output=True, timeout=120)

        busy: list[subprocess.Popen[bytes]] = []
        try:
            cli("start", "--head", "--port", "0", "--num-cpus", "1")
            state = json.loads((Path(folder) / "head" / "state.json").read_text())
            for _ in range(2):
                cli("start", "--address", state["address"], "--key", state["node_key"], "--num-cpus", "1")
            busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
            time.sleep(seconds)
            log = Path(folder) / "head" / "head.log"
            false = log.read_text().count("is suspected: phi")
            for b in busy:
                b.kill()
            agent = json.loads(next((Path(folder) / "nodes").glob("node-*.json")).read_text())["pid"]
            os.kill(agent, signal.SIGSTOP)
            try:
                deadline = time.monotonic() + 30
                while log.read_text().count("is suspected: phi") == false and time.monotonic() < deadline:
                    time.sleep(0.05)
            finally:
                os.kill(agent, signal.SIGCONT)
            found = re.findall(r"is suspected: phi ([\d.]+) after ([\d.]+) s without a beat", log.read_text())
        finally:
            for b in busy:
                b.kill()
            subprocess.run([sys.executable, "-m", "nexus.manage.cli", "stop"], env=env, capture_output=True, timeout=120)
    detected = f"{float(found[-1][1]):.2f} s of silence (phi {found[-1][0]})" if len(found) > false else "not within 30 s"
    return [
        f"real beats (a head and 2 nodes on loopback, both cores busy, {seconds:g} s): {false} false suspicions at phi 8 "
        f"({false / (2 * seconds / 3600):.0f} a node-hour); a stopped node suspected after {detected}"
    ]


def run(quick: bool) -> BenchmarkResult:
    hours = 0.5 if quick else 4.0
    rounds = 1 if quick else 3
    n = 200 if quick else 2000
    figures: list[Figure] = []
    notes: list[str] = []
    for threshold in (3.0, 8.0, 12.0):
        results = [_phi_run(threshold, hours, seed) for seed in range(rounds)]
        detection = [1 / r[0] for r in results]  # (as a rate: higher is better, as every figure here)
        figures.append(
            Figure(f"phi_detect_{threshold:g}", f"phi {threshold:g}: suspicions a second of silence (1 / detection time)", "/s", detection)
        )
        notes.append(
            f"phi {threshold:g}: detected {sum(r[0] for r in results) / len(results):.2f} s after the last heartbeat; "
            f"{sum(r[1] for r in results) / len(results):.2f} false suspicions an hour (lossy, jittery link, simulated)"
        )
    for name in ("consistent_hash", "rendezvous", "static"):
        moved = _moved(name, 10, 20_000 if quick else 100_000)
        notes.append(f"{name}: {moved:.1%} of identities moved when an 11th node joined (1/11 = 9.1% at least)")
    if not quick:
        notes.extend(_at_scale(1000, 1_000_000))
        notes.extend(_real_beats(60.0))
    many = 1000 if quick else 5000
    samples = [_calls(n, many) for _ in range(rounds)]
    pairs = [  # (figure, what it measures, the sample's index of ours, of the peer's)
        ("virtual_calls", "virtual actor calls, one at a time (peer: the same class as a plain actor)", 0, 1),
        ("virtual_first", "first call: activation (peer: a plain actor's creation and first call)", 2, 3),
        ("virtual_hosted_calls", "virtual actor calls of shared hosting, one at a time (peer: the same class as a plain actor)", 4, 1),
        ("virtual_hosted_first", "first call of shared hosting, its host there (peer: a plain actor's creation and first call)", 5, 3),
    ]
    for key, label, ours, peer in pairs:
        figures.append(Figure(key, label, "/s", [s[ours] for s in samples], [s[peer] for s in samples]))
    mean = [sum(s[i] for s in samples) / len(samples) for i in range(len(samples[0]))]
    notes.append(
        f"shared hosting: {many:,} identities activated in one host at {mean[6]:,.0f} a second, "
        f"{mean[7]:,.1f} KiB of the host's memory each; the first identity of a host (the host made) {1e3 / mean[8]:,.0f} ms, "
        f"the next ones {1e3 / mean[5]:,.1f} ms"
    )
    return BenchmarkResult(
        name=NAME,
        title="Cluster services: failure detection, placement, virtual actors",
        figures=figures,
        peer="plain_actor",
        peer_label="plain actor",
        peer_available=True,
        method=f"{rounds} rounds; {hours:g} simulated hours of heartbeats per threshold; {n:,} calls one at a time",
        notes=notes,
    )
