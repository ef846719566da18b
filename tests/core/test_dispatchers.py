"""Dispatchers: fairness, blocking actors, nested asks, laziness, asyncio actors, determinism."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from nexus.core import (
    Actor,
    ActorRef,
    ActorSystem,
    AsyncioDispatcher,
    Context,
    DeterministicDispatcher,
    ExpectTimeoutError,
    InvalidPropsError,
    ManualClock,
    Props,
    SystemConfig,
    ThreadPoolDispatcher,
)

from ..conftest import wait_until


class Log(Actor):
    def __init__(self, name: str, log: list[Any]) -> None:
        self.name = name
        self.log = log

    def receive(self, ctx: Context, message: Any) -> None:
        self.log.append((self.name, message))


def test_throughput_bounds_a_turn_so_a_busy_actor_cannot_starve_others() -> None:
    dispatcher = DeterministicDispatcher(throughput=10)
    system = ActorSystem("fair", dispatcher=dispatcher, clock=ManualClock())
    log: list[Any] = []
    busy = system.spawn(Props.from_class(Log, "busy", log))
    other = system.spawn(Props.from_class(Log, "other", log))
    dispatcher.run_until_idle()
    for i in range(100):
        busy.tell(i)
    other.tell("hello")
    dispatcher.run_until_idle()
    position = log.index(("other", "hello"))
    assert position == 10  # after one turn of the busy actor, not after all 100 messages
    assert [m for n, m in log if n == "busy"] == list(range(100))
    system.shutdown()


def test_deterministic_dispatcher_repeats_the_same_interleaving() -> None:
    def run() -> list[Any]:
        dispatcher = DeterministicDispatcher(throughput=3)
        system = ActorSystem("det", dispatcher=dispatcher, clock=ManualClock())
        log: list[Any] = []
        refs = [system.spawn(Props.from_class(Log, f"a{i}", log)) for i in range(4)]
        for i in range(10):
            for ref in refs:
                ref.tell(i)
        dispatcher.run_until_idle()
        system.shutdown()
        return log

    first = run()
    assert len(first) == 40 and all(run() == first for _ in range(3))


def test_creating_a_system_starts_no_thread() -> None:
    before = set(threading.enumerate())
    system = ActorSystem("lazy")
    assert set(threading.enumerate()) - before == set(), "no new thread (one of another test may end meanwhile)"
    system.spawn(Props.from_class(Log, "x", []))
    assert len(set(threading.enumerate()) - before) >= 1
    system.shutdown()


def _quick_and_sleeper(system: ActorSystem, events: list[str]) -> tuple[ActorRef, ActorRef]:
    """Quick records that it ran; Sleeper sends to the ref it gets, then blocks its worker until Quick has run.

    Sleeper gives up after 20 s: Quick, stuck behind it on its worker's local queue, never ran.
    """
    quick_ran = threading.Event()

    class Quick(Actor):
        def receive(self, ctx: Context, message: Any) -> None:
            events.append("quick ran")
            if message == "go":
                quick_ran.set()

    class Sleeper(Actor):
        def receive(self, ctx: Context, message: Any) -> None:
            ctx.send(message, "go")  # lands on this worker's local queue
            events.append("sleeper woke" if quick_ran.wait(20) else "sleeper gave up: quick never ran")

    return system.spawn(Quick), system.spawn(Sleeper)


def test_a_blocking_actor_does_not_hold_up_actors_queued_behind_it(system: ActorSystem) -> None:
    """A turn scheduled from a worker goes to that worker's local queue; if the worker then blocks
    in user code (time.sleep), the stall monitor moves the queued turn to another worker."""
    events: list[str] = []
    quick, sleeper = _quick_and_sleeper(system, events)
    sleeper.tell(quick)
    wait_until(lambda: len(events) == 2, timeout=30)
    assert events == ["quick ran", "sleeper woke"]


def test_a_blocking_ask_inside_an_actor_does_not_deadlock_one_worker() -> None:
    system = ActorSystem("one", SystemConfig(max_workers=1))

    class Doubler(Actor):
        def receive(self, ctx: Context, message: Any) -> None:
            ctx.respond(message * 2)

    class Caller(Actor):
        def __init__(self, doubler: ActorRef) -> None:
            self.doubler = doubler

        def receive(self, ctx: Context, message: Any) -> None:
            ctx.respond(self.doubler.ask(message, timeout=5).result(5) + 1)  # blocks this worker

    doubler = system.spawn(Doubler)
    caller = system.spawn(Props.from_class(Caller, doubler))
    results = [caller.ask(i, timeout=10) for i in range(20)]
    assert [f.result(10) for f in results] == [2 * i + 1 for i in range(20)]
    assert system.statistics().dispatcher.workers == 1
    system.shutdown()


def test_many_actors_many_threads_nothing_lost(system: ActorSystem) -> None:
    class Sum(Actor):
        def __init__(self) -> None:
            self.total = 0

        def receive(self, ctx: Context, message: Any) -> None:
            if message == "total":
                ctx.respond(self.total)
            else:
                self.total += message

    refs = [system.spawn(Sum) for _ in range(50)]

    def flood() -> None:
        for i in range(200):
            for ref in refs:
                ref.tell(1)

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [ref.ask("total", timeout=10).result(10) for ref in refs] == [800] * 50


def test_thread_pool_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        ThreadPoolDispatcher(max_workers=0)
    with pytest.raises(ValueError, match="throughput"):
        ThreadPoolDispatcher(throughput=0)


# ---- asyncio actors ---------------------------------------------------------------


class AsyncFetcher:
    def __init__(self) -> None:
        self.log: list[str] = []

    async def receive(self, ctx: Context, message: Any) -> None:
        if message == "log":
            ctx.respond(list(self.log))
            return
        self.log.append(f"begin {message}")
        await asyncio.sleep(0.01)
        self.log.append(f"end {message}")
        ctx.respond(message)


def test_async_actor_handles_one_message_at_a_time(system: ActorSystem) -> None:
    ref = system.spawn(AsyncFetcher)
    futures = [ref.ask(i, timeout=5) for i in range(3)]
    assert [f.result(5) for f in futures] == [0, 1, 2]
    assert ref.ask("log", timeout=5).result(5) == ["begin 0", "end 0", "begin 1", "end 1", "begin 2", "end 2"]


def test_async_actors_interleave_with_each_other(system: ActorSystem) -> None:
    spans: list[tuple[str, str]] = []
    b_began = asyncio.Event()

    class Napper:
        async def receive(self, ctx: Context, message: Any) -> None:
            spans.append(("begin", message))
            if message == "a":
                await asyncio.wait_for(b_began.wait(), 20)  # only b, running while a awaits, sets it
            else:
                b_began.set()
            spans.append(("end", message))
            ctx.respond(message)

    a, b = system.spawn(Napper), system.spawn(Napper)
    fa, fb = a.ask("a", timeout=30), b.ask("b", timeout=30)
    assert (fa.result(30), fb.result(30)) == ("a", "b")
    assert spans.index(("begin", "b")) < spans.index(("end", "a")), "b began while a was awaiting"


def test_async_function_actor_with_hooks_and_restart(system: ActorSystem) -> None:
    seen: list[str] = []

    async def receive(ctx: Context, message: Any) -> None:
        seen.append(type(message).__name__ if not isinstance(message, str) else message)
        await asyncio.sleep(0)
        if message == "fail":
            raise ValueError("async failure")
        if message == "ping":
            ctx.respond("pong")

    ref = system.spawn(receive)
    assert ref.ask("ping", timeout=5).result(5) == "pong"
    with pytest.raises(ValueError, match="async failure"):
        ref.ask("fail", timeout=5).result(5)
    assert ref.ask("ping", timeout=5).result(5) == "pong"
    system.stop(ref).result(5)
    assert seen == ["Started", "ping", "fail", "Restarting", "Started", "ping", "Stopping", "Stopped"]


def test_expect_async_in_an_async_actor(system: ActorSystem) -> None:
    class Negotiator:
        async def receive(self, ctx: Context, message: Any) -> None:
            if message == "negotiate":
                try:
                    ctx.respond(await ctx.expect_async(int, timeout=5))
                except ExpectTimeoutError:
                    ctx.respond("timeout")
            elif message == "quick":
                ctx.respond(await ctx.expect_async(int, timeout=0.05))

    ref = system.spawn(Negotiator)
    fut = ref.ask("negotiate", timeout=5)
    ref.tell("noise")
    ref.tell(7)
    assert fut.result(5) == 7
    with pytest.raises(ExpectTimeoutError):
        ref.ask("quick", timeout=5).result(5)


def test_blocking_expect_in_an_async_actor_is_refused(system: ActorSystem) -> None:
    class Wrong:
        async def receive(self, ctx: Context, message: Any) -> None:
            ctx.expect(int, timeout=1)

    with pytest.raises(Exception, match="expect_async"):
        system.spawn(Wrong).ask("x", timeout=5).result(5)


def test_an_async_actor_on_a_thread_dispatcher_is_refused(system: ActorSystem) -> None:
    with pytest.raises(InvalidPropsError, match="asyncio dispatcher"):
        system.spawn(Props.from_class(AsyncFetcher).with_dispatcher(ThreadPoolDispatcher()))


def test_actors_on_a_caller_provided_event_loop() -> None:
    async def main() -> list[Any]:
        dispatcher = AsyncioDispatcher(loop=asyncio.get_running_loop())
        system = ActorSystem("loop", dispatcher=dispatcher)
        ref = system.spawn(AsyncFetcher)
        results = [await ref.ask(i, timeout=5) for i in range(3)]
        log = await ref.ask("log", timeout=5)
        stopped = system.stop(ref)
        await stopped
        system.shutdown(timeout=0)
        return [results, log]

    results, log = asyncio.run(main())
    assert results == [0, 1, 2] and len(log) == 6


def test_the_stall_monitor_wakes_again_after_the_pool_was_idle(system: ActorSystem) -> None:
    """Same rescue as above, but after every worker (and so the monitor) went to sleep first."""
    events: list[str] = []
    quick, sleeper = _quick_and_sleeper(system, events)
    quick.tell("warm up")
    wait_until(lambda: events == ["quick ran"])
    dispatcher = system._dispatcher  # type: ignore[attr-defined]
    wait_until(lambda: dispatcher._monitor_parked, timeout=30)  # every worker parked, and with them the stall monitor
    sleeper.tell(quick)
    wait_until(lambda: len(events) == 3, timeout=30)
    assert events == ["quick ran", "quick ran", "sleeper woke"]


def test_an_async_actor_awaits_an_ask_to_a_thread_actor(system: ActorSystem) -> None:
    class Doubler(Actor):
        def receive(self, ctx: Context, message: Any) -> None:
            ctx.respond(message * 2)

    class AsyncClient:
        def __init__(self, doubler: ActorRef) -> None:
            self.doubler = doubler

        async def receive(self, ctx: Context, message: Any) -> None:
            doubled = await ctx.ask(self.doubler, message, timeout=5)
            ctx.respond(doubled + 1)

    doubler = system.spawn(Doubler)
    client = system.spawn(Props.from_class(AsyncClient, doubler))
    assert [client.ask(i, timeout=5).result(5) for i in range(5)] == [1, 3, 5, 7, 9]
