"""``nexus demo``: the runtime at work, in about half a second.

Actors in one process: a counter answering asks, a supervisor whose worker
fails and is restarted (the supervision events are printed as they happen),
a watch that reports the worker's end once its restarts are spent, and the
cost of a tell and an ask measured on this machine.
"""

from __future__ import annotations

import time
from typing import Any

from ..core import (
    ActorRestarted,
    ActorSystem,
    Context,
    Directive,
    Props,
    SupervisionDecision,
    SupervisorBuilder,
    Terminated,
)


class Counter:
    """Counts increments; answers ``"get"`` with the count."""

    def __init__(self) -> None:
        self.count = 0

    def receive(self, ctx: Context, message: Any) -> None:
        if message == "get":
            ctx.respond(self.count)
        else:
            self.count += message


class Worker:
    """Parses numbers; fails on anything else. Its state shows whether it was restarted."""

    def __init__(self) -> None:
        self.handled = 0

    def receive(self, ctx: Context, message: Any) -> None:
        self.handled += 1
        ctx.respond((int(message), self.handled))  # int("oops") raises ValueError


class WorkerOwner:
    """Owns the worker: restarts it on ValueError at most twice, and watches it."""

    def __init__(self, report: Any) -> None:
        self.report = report
        self.worker: Any = None

    def started(self, ctx: Context) -> None:
        self.worker = ctx.spawn_named(Worker, "worker")
        ctx.watch(self.worker)

    def receive(self, ctx: Context, message: Any) -> None:
        if isinstance(message, Terminated):
            self.report(f"  supervisor: watched {message.who.path} has terminated")
        elif message == "worker?":
            ctx.respond(self.worker)


def run_demo(quiet: bool = False) -> int:
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if not quiet:
            print(line, flush=True)

    started = time.perf_counter()
    from .cluster_demo import run_cluster_demo

    say("A local cluster: tasks and actors in worker processes")
    figures = run_cluster_demo(quiet)
    say("")
    say("The actor runtime inside one process")
    strategy = SupervisorBuilder().one_for_one().on(ValueError, Directive.RESTART).restarts(2, within=60.0).build()
    with ActorSystem("demo") as system:
        system.event_stream.subscribe(
            SupervisionDecision,
            lambda e: say(f"  supervision: {e.child.path} raised {type(e.reason).__name__}({e.reason}) -> {e.directive.name}"),
        )
        system.event_stream.subscribe(ActorRestarted, lambda e: say(f"  restarted: {e.actor.path} (restart #{e.restarts})"))

        say("1. ask and tell")
        counter = system.spawn_named(Counter, "counter")
        for _ in range(1000):
            counter.tell(1)
        say(f"  counter after 1000 tells: {counter.ask('get', timeout=5).result()}")

        say("2. a supervised failure and restart")
        supervisor = system.spawn_named(Props.from_class(WorkerOwner, say).with_supervisor(strategy), "supervisor")
        worker = supervisor.ask("worker?", timeout=5).result()
        say(f"  worker {worker} parses '41': {worker.ask('41', timeout=5).result()}")
        try:
            worker.ask("oops", timeout=5).result()
        except ValueError as exc:
            say(f"  the asker sees the failure: ValueError({exc})")
        value, handled = worker.ask("42", timeout=5).result()
        say(f"  worker parses '42' -> {value}; messages handled by this instance: {handled} (state was reset)")

        say("3. restarts spent: the supervisor stops the worker and its watch fires")
        for bad in ("x", "y"):
            try:
                worker.ask(bad, timeout=5).result()
            except ValueError:
                pass
        deadline = time.monotonic() + 5
        while worker in system.actors() and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)

        say("4. cost on this machine")
        n = 200_000
        t0 = time.perf_counter()
        for _ in range(n):
            counter.tell(1)
        counter.ask("get", timeout=30).result()
        tells = n / (time.perf_counter() - t0)
        m = 20_000
        t0 = time.perf_counter()
        for _ in range(m):
            counter.ask("get").result()
        asks = m / (time.perf_counter() - t0)
        say(f"  tell: {tells:,.0f} messages/s   ask round trip from a thread: {asks:,.0f} /s")
    elapsed = time.perf_counter() - started
    summary = (
        f"demo finished in {elapsed:.2f} s; cluster up in {figures['init_to_first_result_s'] * 1000:.0f} ms, "
        f"{figures['actor_sync']:,.0f} actor calls/s; all actors stopped"
    )
    print(summary if quiet else f"\n{summary}")
    return 0
