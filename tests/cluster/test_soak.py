"""Soak: thousands of mixed task and actor calls while worker processes are killed at random (bounded in time).

Afterwards every ref has resolved to its value or to a defined error, each
restartable actor's answers agree with its restarts, and nothing is left
behind. Run with ``-s`` to see the figures; NEXUS_SOAK_SECONDS sets the length.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import time

import nexus
from nexus.cluster import api
from nexus.cluster.events import ActorRestarting, ClusterEvent
from nexus.core.errors import ActorDiedError, TaskCancelledError, WorkerCrashedError

SECONDS = float(os.environ.get("NEXUS_SOAK_SECONDS", "25"))
DEFINED = (WorkerCrashedError, ActorDiedError, TaskCancelledError)


@nexus.remote
def square(x):
    return x * x


@nexus.remote
def napping_square(x):
    time.sleep(0.01)
    return x * x


@nexus.remote
class Counter:
    def __init__(self):
        self.n = 0

    def incr(self):
        self.n += 1
        return self.n


def _children() -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(os.getpid())], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in out]


def test_soak_with_random_kills():
    rng = random.Random(1234)
    nexus.init(num_cpus=2)
    events: list[ClusterEvent] = []
    nexus.event_stream().subscribe(ClusterEvent, events.append)
    runtime = api._runtime()
    counters = [Counter.options(max_restarts=-1, max_task_retries=-1).remote() for _ in range(2)]
    fragile = Counter.options(max_restarts=-1).remote()  # calls in flight at a crash fail instead
    tasks: list[tuple[object, int]] = []
    answers: dict[int, list[object]] = collections.defaultdict(list)
    fragile_refs = []
    kills = 0
    start = time.monotonic()
    next_kill = start + 0.5
    i = 0
    try:
        while time.monotonic() - start < SECONDS:
            i += 1
            tasks.append(((square if i % 3 else napping_square).remote(i), i * i))
            for k, counter in enumerate(counters):
                answers[k].append(counter.incr.remote())
            fragile_refs.append(fragile.incr.remote())
            if i % 50 == 0:
                nexus.wait([t for t, _ in tasks[-50:]], num_returns=50, timeout=30)  # keep the backlog modest
            if time.monotonic() >= next_kill:
                with runtime.lock:
                    pids = [w.proc.pid for w in runtime.every_worker if w.alive and w.proc is not None and w.ready.is_set()]
                if pids:
                    try:
                        os.kill(rng.choice(pids), signal.SIGKILL)
                        kills += 1
                    except ProcessLookupError:
                        pass
                next_kill = time.monotonic() + rng.uniform(0.3, 0.9)
        outcomes: collections.Counter[str] = collections.Counter()
        for ref, expected in tasks:
            try:
                assert nexus.get(ref, timeout=60) == expected
                outcomes["task ok"] += 1
            except DEFINED as exc:
                outcomes[f"task {type(exc).__name__}"] += 1
        restarts = collections.Counter(e.actor for e in events if isinstance(e, ActorRestarting))
        for k, counter in enumerate(counters):
            values = nexus.get(answers[k], timeout=60)  # retried calls: every one of them succeeds
            resets = 0
            for before, after in zip(values, values[1:], strict=False):
                assert after == before + 1 or after == 1, f"counter {k} went from {before} to {after}"
                resets += after == 1
            assert values[0] == 1
            label = next(name for name in restarts if name.endswith(f"({counter._actor_id:x})")) if resets else None
            assert resets <= (restarts[label] if label else 0), "the state started over only when the actor restarted"
            outcomes["actor call ok"] += len(values)
        for ref in fragile_refs:
            try:
                nexus.get(ref, timeout=60)
                outcomes["fragile call ok"] += 1
            except ActorDiedError:
                outcomes["fragile call ActorDiedError"] += 1
        calls = len(tasks) + sum(len(v) for v in answers.values()) + len(fragile_refs)
        print(f"\nsoak: {SECONDS:.0f} s, {calls} calls, {kills} kills, {sum(restarts.values())} actor restarts, outcomes {dict(outcomes)}")
        assert kills >= 5 and calls >= 1000
        assert sum(outcomes.values()) == calls
    finally:
        nexus.shutdown()
    assert _children() == [], "no worker process is left"
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"nexus-{os.getpid()}-")], "no segment is left"
