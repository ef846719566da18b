"""Benchmark "core": in-process actors, Nexus side by side with Pykka in the same run.

Method
------
Three figures, each a rate (higher is better), measured for Nexus (actors of
one ``ActorSystem`` on its default thread-pool dispatcher) and for Pykka
(``pykka.ThreadingActor``, one thread per actor):

tell throughput (target: Nexus >= 5x Pykka)
    ``N`` tells from the main thread to one counting actor, then one ask as a
    barrier whose reply is the count. Timed: from the first tell until the
    barrier's reply is in hand. The count must equal ``N`` (plus the warm-up's
    tells, sent to the same actor before), or the benchmark fails: a lost
    message is an error, not a slow run.
ask round trips from a plain thread (target: Nexus >= 3x Pykka)
    ``K`` asks one after another from the main thread to an echo actor, each
    waiting for its reply before the next is sent -- Nexus:
    ``ref.ask(i).result()``, Pykka: ``actor_ref.ask(i)`` (blocking). Timed:
    the whole loop. The sum of the replies is checked.
ping-pong inside one system (target: Nexus >= 300,000 msgs/s absolute)
    Two actors bounce a counter with exactly one message in flight: each
    handles ``n`` by sending ``n + 1`` to the other (Nexus: ``ctx.respond``
    to the sender; Pykka: ``peer.tell``), until ``n`` reaches ``M``; ``M``
    messages in all (the first one from the main thread). Timed: from that
    first tell until the actor that receives ``M`` sets an event the main
    thread waits on. Afterwards both actors are asked how many messages they
    handled; the sum must equal ``M``.

Every measurement runs on freshly started actors, after an untimed warm-up of
the same kind on those actors (about a tenth of the count) and a full garbage
collection (the collector stays enabled while timing); the actors are stopped
afterwards, untimed. A round measures every figure on both sides; which side
goes first alternates from round to round (Nexus first in rounds 1, 3, 5...).
Rounds: 5 (``--quick``: 3, with counts 5 to 10 times smaller). The headline figure
of each side is the MEDIAN of its rounds, the ratio is median Nexus / median
Pykka; every round's value is in the ``--json`` output. Where Pykka is much
slower (asks, ping-pong) it runs a smaller count so that a round stays short;
a rate does not depend on the count once the run is long enough to time.
On small machines Pykka's rates can be bimodal from run to run (whether its
threads end up sharing a core); the table adds a note for any side whose
rounds differ by more than 1.5x, and the median keeps one lucky or unlucky
round from setting the headline.

At the end the Nexus system is shut down (``ActorSystem.shutdown()``) and every
Pykka actor stopped (``pykka.ActorRegistry.stop_all()``), also on failure.
Without Pykka installed, only the Nexus figures are measured, and the output
says so.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from nexus.core import ActorRef, ActorSystem, Context, Props

from .harness import BenchmarkError, BenchmarkResult, Figure, Target, alternate_rounds, rate

__all__ = ["NAME", "TITLE", "run"]

NAME = "core"
TITLE = "in-process actors, Nexus vs Pykka"

WAIT = 60.0  # seconds: hang guard for barriers and events (never reached in a healthy run)


@dataclass(frozen=True)
class Sizes:
    rounds: int
    tells: int  # both sides
    asks_nexus: int
    asks_pykka: int
    bounces_nexus: int
    bounces_pykka: int


FULL = Sizes(rounds=5, tells=200_000, asks_nexus=50_000, asks_pykka=10_000, bounces_nexus=300_000, bounces_pykka=50_000)
QUICK = Sizes(rounds=3, tells=20_000, asks_nexus=5_000, asks_pykka=1_000, bounces_nexus=20_000, bounces_pykka=10_000)


class _Get:
    """The barrier / query message: 'how many have you handled?' (reset to zero by the ping-pong actors)."""

    def __repr__(self) -> str:
        return "GET"


GET = _Get()


def _warm(count: int) -> int:
    return max(count // 10, 100)


def _expect(what: str, got: Any, wanted: Any) -> None:
    if got != wanted:
        raise BenchmarkError(f"{what}: got {got!r}, expected {wanted!r} -- messages were lost or duplicated")


# ---- Nexus ------------------------------------------------------------------


class NexusCounter:
    def __init__(self) -> None:
        self.count = 0

    def receive(self, ctx: Context, message: Any) -> None:
        if message is GET:
            ctx.respond(self.count)
        else:
            self.count += 1


class NexusEcho:
    def receive(self, ctx: Context, message: Any) -> None:
        ctx.respond(message)


class NexusBouncer:
    def __init__(self, limit: int, done: threading.Event) -> None:
        self.limit = limit
        self.done = done
        self.handled = 0

    def receive(self, ctx: Context, message: Any) -> None:
        if message is GET:
            ctx.respond(self.handled)
            self.handled = 0
            return
        self.handled += 1
        if message >= self.limit:
            self.done.set()
        else:
            ctx.respond(message + 1)


class NexusSide:
    """Nexus actors in one system for the whole benchmark; fresh actors for every measurement."""

    def __init__(self) -> None:
        self.system = ActorSystem("bench-core")

    def _stop(self, *refs: ActorRef) -> None:
        for ref in refs:
            self.system.stop(ref).result(WAIT)

    def tell(self, n: int) -> float:
        ref = self.system.spawn(NexusCounter)
        try:
            tell = ref.tell
            warm = _warm(n)
            for _ in range(warm):
                tell(1)
            _expect("nexus tell warm-up count", ref.ask(GET, WAIT).result(WAIT), warm)
            start = time.perf_counter()
            for _ in range(n):
                tell(1)
            count = ref.ask(GET, WAIT).result(WAIT)
            seconds = time.perf_counter() - start
            _expect("nexus tell count", count, warm + n)
            return rate(n, seconds)
        finally:
            self._stop(ref)

    def ask(self, n: int) -> float:
        ref = self.system.spawn(NexusEcho)
        try:
            ask = ref.ask
            for i in range(_warm(n)):
                ask(i).result()
            total = 0
            start = time.perf_counter()
            for i in range(n):
                total += ask(i).result()
            seconds = time.perf_counter() - start
            _expect("nexus ask replies (sum)", total, n * (n - 1) // 2)
            return rate(n, seconds)
        finally:
            self._stop(ref)

    def ping_pong(self, m: int) -> float:
        done = threading.Event()
        props = Props.from_class(NexusBouncer, m, done)
        a = self.system.spawn(props)
        b = self.system.spawn(props)
        try:
            warm = _warm(m)
            _bounce(lambda first: a.tell(first, b), done, m - warm + 1)
            _expect("nexus ping-pong warm-up messages", self._handled(a, b), warm)
            seconds = _bounce(lambda first: a.tell(first, b), done, 1)
            _expect("nexus ping-pong messages", self._handled(a, b), m)
            return rate(m, seconds)
        finally:
            self._stop(a, b)

    def _handled(self, *refs: ActorRef) -> int:
        return sum(ref.ask(GET, WAIT).result(WAIT) for ref in refs)

    def close(self) -> bool:
        return self.system.shutdown(timeout=10)


def _bounce(send_first: Callable[[int], None], done: threading.Event, first: int) -> float:
    """Start a ping-pong at ``first`` and wait for it to reach the limit; the elapsed seconds."""
    done.clear()
    start = time.perf_counter()
    send_first(first)
    if not done.wait(WAIT):
        raise BenchmarkError(f"ping-pong did not reach its limit within {WAIT} s")
    return time.perf_counter() - start


# ---- Pykka ------------------------------------------------------------------


class PykkaSide:
    """Pykka ThreadingActors, started fresh for every measurement and stopped after it."""

    def __init__(self, pykka: Any) -> None:
        self.pykka = pykka

        class Counter(pykka.ThreadingActor):  # type: ignore[misc,name-defined]
            def __init__(self) -> None:
                super().__init__()
                self.count = 0

            def on_receive(self, message: Any) -> Any:
                if message is GET:
                    return self.count
                self.count += 1
                return None

        class Echo(pykka.ThreadingActor):  # type: ignore[misc,name-defined]
            def on_receive(self, message: Any) -> Any:
                return message

        class Bouncer(pykka.ThreadingActor):  # type: ignore[misc,name-defined]
            def __init__(self, limit: int, done: threading.Event) -> None:
                super().__init__()
                self.limit = limit
                self.done = done
                self.handled = 0
                self.peer: Any = None

            def on_receive(self, message: Any) -> Any:
                if message is GET:
                    handled, self.handled = self.handled, 0
                    return handled
                if type(message) is tuple:  # ("peer", actor_ref)
                    self.peer = message[1]
                    return None
                self.handled += 1
                if message >= self.limit:
                    self.done.set()
                else:
                    self.peer.tell(message + 1)
                return None

        self.Counter, self.Echo, self.Bouncer = Counter, Echo, Bouncer

    @staticmethod
    def _stop(*refs: Any) -> None:
        for ref in refs:
            ref.stop()

    def tell(self, n: int) -> float:
        ref = self.Counter.start()
        try:
            tell = ref.tell
            warm = _warm(n)
            for _ in range(warm):
                tell(1)
            _expect("pykka tell warm-up count", ref.ask(GET, timeout=WAIT), warm)
            start = time.perf_counter()
            for _ in range(n):
                tell(1)
            count = ref.ask(GET, timeout=WAIT)
            seconds = time.perf_counter() - start
            _expect("pykka tell count", count, warm + n)
            return rate(n, seconds)
        finally:
            self._stop(ref)

    def ask(self, n: int) -> float:
        ref = self.Echo.start()
        try:
            ask = ref.ask
            for i in range(_warm(n)):
                ask(i)
            total = 0
            start = time.perf_counter()
            for i in range(n):
                total += ask(i)
            seconds = time.perf_counter() - start
            _expect("pykka ask replies (sum)", total, n * (n - 1) // 2)
            return rate(n, seconds)
        finally:
            self._stop(ref)

    def ping_pong(self, m: int) -> float:
        done = threading.Event()
        a = self.Bouncer.start(m, done)
        b = self.Bouncer.start(m, done)
        try:
            a.ask(("peer", b), timeout=WAIT)
            b.ask(("peer", a), timeout=WAIT)
            warm = _warm(m)
            _bounce(a.tell, done, m - warm + 1)
            _expect("pykka ping-pong warm-up messages", self._handled(a, b), warm)
            seconds = _bounce(a.tell, done, 1)
            _expect("pykka ping-pong messages", self._handled(a, b), m)
            return rate(m, seconds)
        finally:
            self._stop(a, b)

    @staticmethod
    def _handled(*refs: Any) -> int:
        return sum(ref.ask(GET, timeout=WAIT) for ref in refs)

    def close(self) -> bool:
        self.pykka.ActorRegistry.stop_all()
        return not self.pykka.ActorRegistry.get_all()


def _import_pykka() -> Any:
    try:
        import pykka
    except ImportError:
        return None
    return pykka


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "?"


# ---- the benchmark ------------------------------------------------------------


def run(quick: bool) -> BenchmarkResult:
    sizes = QUICK if quick else FULL
    pykka = _import_pykka()
    environment = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "nexus": _version("nexus-actors"),
        "pykka": _version("pykka") if pykka is not None else "not importable",
    }
    notes: list[str] = []
    nexus = NexusSide()
    peer = PykkaSide(pykka) if pykka is not None else None
    try:
        measures: list[tuple[str, dict[str, Callable[[], float]]]] = [
            ("tell_throughput", {"nexus": lambda: nexus.tell(sizes.tells)}),
            ("ask_roundtrip", {"nexus": lambda: nexus.ask(sizes.asks_nexus)}),
            ("ping_pong", {"nexus": lambda: nexus.ping_pong(sizes.bounces_nexus)}),
        ]
        if peer is not None:
            measures[0][1]["pykka"] = lambda: peer.tell(sizes.tells)
            measures[1][1]["pykka"] = lambda: peer.ask(sizes.asks_pykka)
            measures[2][1]["pykka"] = lambda: peer.ping_pong(sizes.bounces_pykka)
        samples = alternate_rounds(measures, sizes.rounds, label=NAME)
    finally:
        stopped = nexus.close()
        if peer is not None and not peer.close():
            notes.append("some Pykka actors were still registered after ActorRegistry.stop_all()")
    if not stopped:
        notes.append("ActorSystem.shutdown() reported actors that did not stop within 10 s")
    leftover = [t.name for t in threading.enumerate() if t.name.startswith("nexus-bench-core")]
    if leftover:
        notes.append(f"threads of the Nexus system still alive after shutdown: {leftover}")

    def figure(key: str, label: str, unit: str, target: Target) -> Figure:
        sides = samples[key]
        return Figure(key, label, unit, sides["nexus"], sides.get("pykka"), target, aggregate="median")

    figures = [
        figure("tell_throughput", "tell throughput (1 actor, from main thread)", "msgs/s", Target.ratio(5)),
        figure("ask_roundtrip", "ask round trips (from main thread)", "asks/s", Target.ratio(3)),
        figure("ping_pong", "ping-pong (2 actors, 1 msg in flight)", "msgs/s", Target.at_least(300_000, "msgs/s")),
    ]
    counts = (
        f"tells {sizes.tells:,} per side; asks {sizes.asks_nexus:,} Nexus / {sizes.asks_pykka:,} Pykka; "
        f"ping-pong {sizes.bounces_nexus:,} Nexus / {sizes.bounces_pykka:,} Pykka messages"
    )
    order = "sides alternating first/second each round"
    if peer is None:
        counts = f"tells {sizes.tells:,}; asks {sizes.asks_nexus:,}; ping-pong {sizes.bounces_nexus:,} messages"
        order = "Nexus only"
    method = f"median of {sizes.rounds} rounds per side ({order}), each run on fresh actors after an untimed warm-up ({counts})"
    if quick:
        notes.append("--quick: short runs for a smoke test; do not quote these figures")
    notes.append("targets are reported, not enforced")
    return BenchmarkResult(
        name=NAME,
        title=TITLE,
        figures=figures,
        peer="pykka",
        peer_label="Pykka",
        peer_available=peer is not None,
        method=method,
        notes=notes,
        environment=environment,
    )
