"""Spawning, naming, refs, tell/ask and lifecycle hooks -- on every dispatcher."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nexus.core import (
    Actor,
    ActorRef,
    ActorSystem,
    AskTimeoutError,
    Context,
    DeadLetter,
    DeadLetterError,
    NameTakenError,
    Props,
    Restarting,
    Started,
    Stopped,
    Stopping,
    SystemShutdownError,
)

from ..conftest import Runtime


class Counter(Actor):
    def __init__(self, start: int = 0) -> None:
        self.count = start

    def receive(self, ctx: Context, message: Any) -> None:
        if message == "get":
            ctx.respond(self.count)
        else:
            self.count += message


class Hooks(Actor):
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def started(self, ctx: Context) -> None:
        self.log.append("started")

    def stopping(self, ctx: Context) -> None:
        self.log.append("stopping")

    def stopped(self, ctx: Context) -> None:
        self.log.append("stopped")

    def restarting(self, ctx: Context, reason: BaseException | None) -> None:
        self.log.append(f"restarting:{type(reason).__name__}")

    def receive(self, ctx: Context, message: Any) -> None:
        if message == "fail":
            raise RuntimeError("asked to fail")
        self.log.append(f"got:{message}")
        ctx.respond("ok")


def test_tell_is_processed_in_order_and_ask_replies(runtime: Runtime) -> None:
    ref = runtime.system.spawn(Counter)
    for i in range(1, 101):
        ref.tell(i)
    assert ref.ask("get", timeout=5).result(5) == 5050


def test_spawn_names_addresses_and_prefixes(runtime: Runtime) -> None:
    system = runtime.system
    named = system.spawn_named(Counter, "counter")
    auto = system.spawn(Counter)
    prefixed = system.spawn_prefix(Counter, "worker-")
    assert named.address == "nexus://test/user/counter"
    assert str(named) == named.address and repr(named) == "ActorRef('nexus://test/user/counter')"
    assert named.name == "counter" and named.path == "/user/counter"
    assert auto.name.startswith("$")
    assert prefixed.name.startswith("worker-") and prefixed.name[len("worker-") :].isdigit()
    assert system.resolve(named.address) == named
    with pytest.raises(NameTakenError, match="counter"):
        system.spawn_named(Counter, "counter")
    for bad in ("", "a/b", "$x"):
        with pytest.raises(ValueError, match="actor names"):
            system.spawn_named(Counter, bad)


def test_refs_are_stable_values(runtime: Runtime) -> None:
    system = runtime.system
    ref = system.spawn_named(Counter, "c")
    assert ref == system.resolve("nexus://test/user/c")
    assert hash(ref) == hash(system.resolve("nexus://test/user/c"))
    assert {ref, system.resolve(ref.address)} == {ref}
    system.stop(ref).result(5)
    again = system.spawn_named(Counter, "c")  # same address, new incarnation
    assert again.address == ref.address and again != ref
    ref.tell(1)  # the stale ref never reaches the new actor
    assert again.ask("get", timeout=5).result(5) == 0


def test_hooks_run_in_order_on_class_actors(runtime: Runtime) -> None:
    log: list[str] = []
    ref = runtime.system.spawn(Props.from_class(Hooks, log))
    assert ref.ask("hello", timeout=5).result(5) == "ok"
    runtime.system.stop(ref).result(5)
    assert log == ["started", "got:hello", "stopping", "stopped"]


def test_function_actor_sees_lifecycle_as_messages(runtime: Runtime) -> None:
    seen: list[Any] = []

    def receive(ctx: Context, message: Any) -> None:
        seen.append(message)
        if message == "fail":
            raise ValueError("fail")
        if message == "ping":
            ctx.respond("pong")

    ref = runtime.system.spawn(receive)
    assert ref.ask("ping", timeout=5).result(5) == "pong"
    with pytest.raises(ValueError):
        ref.ask("fail", timeout=5).result(5)
    assert ref.ask("ping", timeout=5).result(5) == "pong"
    runtime.system.stop(ref).result(5)
    kinds = [type(m).__name__ if not isinstance(m, str) else m for m in seen]
    assert kinds == ["Started", "ping", "fail", "Restarting", "Started", "ping", "Stopping", "Stopped"]
    assert isinstance(seen[3], Restarting) and isinstance(seen[3].reason, ValueError)
    assert isinstance(seen[0], Started) and isinstance(seen[-2], Stopping) and isinstance(seen[-1], Stopped)


def test_ask_to_a_stopped_actor_fails_fast_with_dead_letter_error(runtime: Runtime) -> None:
    system = runtime.system
    ref = system.spawn(Counter)
    system.stop(ref).result(5)
    letters: list[DeadLetter] = []
    system.event_stream.subscribe(DeadLetter, letters.append)
    with pytest.raises(DeadLetterError, match="not running"):
        ref.ask("get", timeout=5).result(5)
    ref.tell(1)
    assert [letter.message for letter in letters] == ["get", 1]
    assert all(letter.target == ref for letter in letters)


def test_exception_in_receive_fails_the_ask_with_the_original_exception(runtime: Runtime) -> None:
    log: list[str] = []
    ref = runtime.system.spawn(Props.from_class(Hooks, log))
    with pytest.raises(RuntimeError, match="asked to fail"):
        ref.ask("fail", timeout=5).result(5)
    assert ref.ask("after", timeout=5).result(5) == "ok"  # restarted by the default strategy
    assert "restarting:RuntimeError" in log


def test_ask_is_awaitable_from_asyncio(runtime: Runtime) -> None:
    if runtime.deterministic:
        pytest.skip("the deterministic dispatcher runs only on the test thread")
    ref = runtime.system.spawn(Counter)
    ref.tell(41)

    async def main() -> int:
        ref.tell(1)
        return await ref.ask("get", timeout=5)  # type: ignore[no-any-return]

    assert asyncio.run(main()) == 42


def test_ask_timeout_and_the_late_reply_goes_to_dead_letters(runtime: Runtime) -> None:
    system = runtime.system
    held: list[Context] = []
    replies: list[Any] = []

    class Slow(Actor):
        def receive(self, ctx: Context, message: Any) -> None:
            if message == "question":
                held.append(ctx.sender)  # answer later
            elif message == "answer-now":
                held[0].tell("late answer")
                ctx.respond("done")

    ref = system.spawn(Slow)
    letters: list[DeadLetter] = []
    system.event_stream.subscribe(DeadLetter, letters.append)
    future = ref.ask("question", timeout=0.05)
    if runtime.clock is not None:
        runtime.settle()
        runtime.clock.advance(0.1)
    with pytest.raises(AskTimeoutError, match="late reply goes to dead letters"):
        future.result(5)
    assert isinstance(future.exception(), TimeoutError)  # also a builtin TimeoutError
    replies.append(ref.ask("answer-now", timeout=5).result(5))
    assert replies == ["done"]
    runtime.wait_until(lambda: [letter.message for letter in letters] == ["late answer"])
    assert "asker is gone" in letters[0].reason


def test_several_systems_live_side_by_side() -> None:
    with ActorSystem("one") as one, ActorSystem("two") as two:
        a = one.spawn_named(Counter, "c")
        b = two.spawn_named(Counter, "c")
        a.tell(1)
        b.tell(2)
        assert (a.ask("get").result(5), b.ask("get").result(5)) == (1, 2)
        assert a.address == "nexus://one/user/c" and b.address == "nexus://two/user/c"


def test_spawn_after_shutdown_is_a_clear_error() -> None:
    system = ActorSystem("gone")
    system.shutdown()
    with pytest.raises(SystemShutdownError, match="create a new ActorSystem"):
        system.spawn(Counter)


def test_props_reject_what_cannot_be_an_actor() -> None:
    with pytest.raises(TypeError, match="no receive"):
        Props.from_class(int)
    with pytest.raises(TypeError, match="takes a class"):
        Props.from_class(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected Props"):
        Props.of(42)  # type: ignore[arg-type]


def test_ten_thousand_actors_spawned_and_stopped_leave_nothing_registered(system: ActorSystem) -> None:
    refs = [system.spawn(Counter) for _ in range(10_000)]
    assert len(system.actors()) == 10_000
    stops = [system.stop(ref) for ref in refs]
    for fut in stops:
        fut.result(30)
    assert system.actors() == []
    assert system._registry == {}
    assert system._guardian.snapshot() == []
    assert system.statistics().actors == 0


def test_children_are_registered_and_stop_with_their_parent(runtime: Runtime) -> None:
    system = runtime.system

    class Parent(Actor):
        def started(self, ctx: Context) -> None:
            for i in range(3):
                ctx.spawn_named(Counter, f"kid{i}")

        def receive(self, ctx: Context, message: Any) -> None:
            ctx.respond((ctx.children, [c.name for c in ctx.children]))

    parent = system.spawn_named(Parent, "p")
    children, names = parent.ask("kids?", timeout=5).result(5)
    assert names == ["kid0", "kid1", "kid2"]
    assert children[0].address == "nexus://test/user/p/kid0"
    assert len(system.actors()) == 4
    system.stop(parent).result(5)
    assert system.actors() == []
    assert all(isinstance(c, ActorRef) for c in children)
