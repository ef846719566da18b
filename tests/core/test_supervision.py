"""Supervision: directives, restart limits, one-for-one, all-for-one, backoff, escalation to the root."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from nexus.core import (
    Actor,
    ActorRef,
    ActorRestarted,
    ActorStopped,
    AllForOneStrategy,
    Backoff,
    Context,
    Directive,
    ExponentialBackoffStrategy,
    FailureEvent,
    FailureStrategy,
    LifecyclePolicy,
    OneForOneStrategy,
    Props,
    Scope,
    SupervisionDecision,
    SupervisorBuilder,
    SystemConfig,
    Terminated,
    decider_from_rules,
)

from ..conftest import RUNTIMES, Runtime


class Fragile(Actor):
    """Keeps a count; raises the exception it is sent."""

    def __init__(self, log: list[str] | None = None, name: str = "") -> None:
        self.count = 0
        self.log = log
        self.name = name

    def started(self, ctx: Context) -> None:
        if self.log is not None:
            self.log.append(f"started:{self.name or ctx.self.name}")

    def receive(self, ctx: Context, message: Any) -> None:
        if isinstance(message, BaseException):
            raise message
        if message == "count":
            ctx.respond(self.count)
        else:
            self.count += 1


class Parent(Actor):
    """Spawns named Fragile children; routes ("to", name, msg) to them and answers with their refs."""

    def __init__(self, names: tuple[str, ...], log: list[str]) -> None:
        self.names = names
        self.log = log
        self.kids: dict[str, ActorRef] = {}

    def started(self, ctx: Context) -> None:
        self.log.append(f"started:{ctx.self.name}")
        for name in self.names:
            self.kids[name] = ctx.spawn_named(Props.from_class(Fragile, self.log, name), name)

    def receive(self, ctx: Context, message: Any) -> None:
        if message == "kids":
            ctx.respond(dict(self.kids))
        elif isinstance(message, BaseException):
            raise message


def _events(system: Any, kind: type) -> list[Any]:
    seen: list[Any] = []
    system.event_stream.subscribe(kind, seen.append)
    return seen


def test_failing_actor_is_restarted_n_times_then_stopped(runtime: Runtime) -> None:
    system = runtime.system
    log: list[str] = []
    strategy = OneForOneStrategy(max_restarts=3, within=60.0)
    restarts = _events(system, ActorRestarted)
    stops = _events(system, ActorStopped)
    parent = system.spawn(Props.from_class(Parent, ("kid",), log).with_supervisor(strategy))
    kid = parent.ask("kids", timeout=5).result(5)["kid"]
    for i in range(4):
        kid.tell(RuntimeError(f"failure {i}"))
        if i < 3:
            runtime.wait_until(lambda i=i: len(restarts) == i + 1)
    runtime.wait_until(lambda: any(e.actor == kid for e in stops))
    assert [e.restarts for e in restarts] == [1, 2, 3]
    assert all(isinstance(e.reason, RuntimeError) for e in restarts)
    assert log.count("started:kid") == 4  # the first start and three restarts
    assert kid not in system.actors() and parent in system.actors()


def test_restarts_spread_beyond_the_window_do_not_exhaust(det: Runtime) -> None:
    system, dispatcher, clock = det.system, det.dispatcher, det.clock
    assert clock is not None
    restarts = _events(system, ActorRestarted)
    parent = system.spawn(Props.from_class(Parent, ("kid",), []).with_supervisor(OneForOneStrategy(max_restarts=1, within=1.0)))
    kid = parent.ask("kids").result(1)["kid"]
    for _ in range(5):
        kid.tell(ValueError("again"))
        dispatcher.run_until_idle()
        clock.advance(2.0)  # older failures leave the window
    assert len(restarts) == 5 and kid in system.actors()
    kid.tell(ValueError("one"))
    kid.tell(ValueError("two"))  # two failures within a second: the limit of 1 is exceeded
    dispatcher.run_until_idle()
    assert kid not in system.actors()


def test_decider_per_exception_type(runtime: Runtime) -> None:
    system = runtime.system
    strategy = (
        SupervisorBuilder()
        .on(ValueError, Directive.RESUME)
        .on(KeyError, Directive.STOP)
        .otherwise(Directive.RESTART)
        .build()
    )
    parent = system.spawn(Props.from_class(Parent, ("kid",), []).with_supervisor(strategy))
    kid = parent.ask("kids", timeout=5).result(5)["kid"]
    kid.tell("inc")
    kid.tell("inc")
    kid.tell(ValueError("resume keeps state"))
    assert kid.ask("count", timeout=5).result(5) == 2
    kid.tell(RuntimeError("restart resets state"))
    assert kid.ask("count", timeout=5).result(5) == 0
    kid.tell("inc")
    kid.tell(KeyError("stop"))
    runtime.wait_until(lambda: kid not in system.actors())


def test_messages_queued_behind_a_failure_survive_the_restart(runtime: Runtime) -> None:
    system = runtime.system
    ref = system.spawn(Fragile)
    ref.tell(RuntimeError("boom"))
    for _ in range(10):
        ref.tell("inc")
    assert ref.ask("count", timeout=5).result(5) == 10


def test_all_for_one_restarts_the_siblings(runtime: Runtime) -> None:
    system = runtime.system
    log: list[str] = []
    strategy = SupervisorBuilder().all_for_one().build()
    assert isinstance(strategy, AllForOneStrategy)
    decisions = _events(system, SupervisionDecision)
    parent = system.spawn(Props.from_class(Parent, ("a", "b", "c"), log).with_supervisor(strategy))
    kids = parent.ask("kids", timeout=5).result(5)
    for ref in kids.values():
        ref.tell("inc")
    assert [kids[n].ask("count", timeout=5).result(5) for n in "abc"] == [1, 1, 1]
    kids["b"].tell(RuntimeError("b fails"))
    runtime.wait_until(lambda: log.count("started:a") == 2 and log.count("started:b") == 2 and log.count("started:c") == 2)
    assert [kids[n].ask("count", timeout=5).result(5) for n in "abc"] == [0, 0, 0]  # every sibling restarted
    assert [(d.child.name, d.directive) for d in decisions] == [("b", Directive.RESTART)]


def test_all_for_one_stop_stops_every_child(runtime: Runtime) -> None:
    system = runtime.system
    strategy = AllForOneStrategy(decider=lambda e: Directive.STOP)
    parent = system.spawn(Props.from_class(Parent, ("a", "b"), []).with_supervisor(strategy))
    kids = parent.ask("kids", timeout=5).result(5)
    kids["a"].tell(RuntimeError())
    runtime.wait_until(lambda: system.actors() == [parent])


def test_one_for_one_leaves_the_siblings_alone(runtime: Runtime) -> None:
    system = runtime.system
    log: list[str] = []
    parent = system.spawn(Props.from_class(Parent, ("a", "b"), log).with_supervisor(OneForOneStrategy()))
    kids = parent.ask("kids", timeout=5).result(5)
    kids["b"].tell("inc")
    kids["a"].tell(RuntimeError())
    runtime.wait_until(lambda: log.count("started:a") == 2)
    assert kids["b"].ask("count", timeout=5).result(5) == 1
    assert log.count("started:b") == 1


def test_escalate_fails_the_supervisor_whose_supervisor_restarts_it(runtime: Runtime) -> None:
    system = runtime.system
    log: list[str] = []
    escalate = SupervisorBuilder().otherwise(Directive.ESCALATE).build()

    class Grandparent(Actor):
        def started(self, ctx: Context) -> None:
            self.child = ctx.spawn_named(Props.from_class(Parent, ("leaf",), log).with_supervisor(escalate), "mid")

        def receive(self, ctx: Context, message: Any) -> None:
            ctx.respond(self.child)

    top = system.spawn_named(Grandparent, "top")
    mid = top.ask("mid?", timeout=5).result(5)
    leaf = mid.ask("kids", timeout=5).result(5)["leaf"]
    restarts = _events(system, ActorRestarted)
    leaf.tell(RuntimeError("leaf fails"))
    runtime.wait_until(lambda: [e.actor for e in restarts] == [mid])  # mid restarted by top's default strategy
    runtime.wait_until(lambda: log.count("started:leaf") == 2)  # mid's restart stopped the old leaf; started() made a new one
    assert log.count("started:mid") == 2
    new_leaf = mid.ask("kids", timeout=5).result(5)["leaf"]
    assert new_leaf != leaf and new_leaf.address == leaf.address


def test_a_failure_escalated_to_the_root_is_logged_and_seen_by_error_hooks(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[FailureEvent] = []

    def hook(next_handler: Any) -> Any:
        def handler(event: FailureEvent) -> None:
            seen.append(event)
            next_handler(event)

        return handler

    rt = RUNTIMES["threads"](SystemConfig(error_hooks=(hook,)))
    system = rt.system
    escalate = SupervisorBuilder().otherwise(Directive.ESCALATE).build()
    try:
        with caplog.at_level(logging.INFO, logger="nexus"):
            parent = system.spawn_named(Props.from_class(Parent, ("leaf",), []).with_supervisor(escalate), "boss")
            leaf = parent.ask("kids", timeout=5).result(5)["leaf"]
            leaf.tell(ZeroDivisionError("nobody handles this"))
            rt.wait_until(lambda: any(r.levelno == logging.ERROR for r in caplog.records))  # logged after the hooks ran
        unhandled = [e for e in seen if e.unhandled]
        assert [e.actor for e in unhandled] == [parent]
        assert isinstance(unhandled[0].reason, ZeroDivisionError)
        assert [e.actor for e in seen if not e.unhandled] == [leaf, parent]  # reported at each level on the way up
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert errors and "no supervisor of yours handled it" in errors[0].getMessage()
        assert errors[0].exc_info is not None and errors[0].exc_info[0] is ZeroDivisionError
    finally:
        system.shutdown()


def test_root_escalation_stops_the_top_level_actor(caplog: pytest.LogCaptureFixture) -> None:
    rt = RUNTIMES["deterministic"](SystemConfig(guardian=SupervisorBuilder().otherwise(Directive.ESCALATE).build()))
    system = rt.system
    with caplog.at_level(logging.ERROR, logger="nexus"):
        ref = system.spawn(Fragile)
        ref.tell(RuntimeError("up and away"))
        rt.settle()
    assert ref not in system.actors()
    assert any("has no supervisor" in r.getMessage() for r in caplog.records)
    system.shutdown()


def test_exhausted_restarts_can_escalate_instead_of_stopping(runtime: Runtime) -> None:
    system = runtime.system
    strategy = SupervisorBuilder().restarts(0).escalate_when_exhausted().build()
    restarts = _events(system, ActorRestarted)
    parent = system.spawn(Props.from_class(Parent, ("kid",), []).with_supervisor(strategy))
    kid = parent.ask("kids", timeout=5).result(5)["kid"]
    kid.tell(RuntimeError())
    runtime.wait_until(lambda: [e.actor for e in restarts] == [parent])


def test_exponential_backoff_delays_restarts(det: Runtime) -> None:
    system, dispatcher, clock = det.system, det.dispatcher, det.clock
    assert clock is not None
    strategy = ExponentialBackoffStrategy(initial=1.0, maximum=8.0, multiplier=2.0, jitter=0.0, reset_after=100.0)
    restarts = _events(system, ActorRestarted)
    parent = system.spawn(Props.from_class(Parent, ("kid",), []).with_supervisor(strategy))
    kid = parent.ask("kids").result(1)["kid"]
    expected_delays = [1.0, 2.0, 4.0, 8.0, 8.0]
    for n, delay in enumerate(expected_delays, start=1):
        kid.tell(RuntimeError(f"failure {n}"))
        dispatcher.run_until_idle()
        clock.advance(delay - 0.01)
        dispatcher.run_until_idle()
        assert len(restarts) == n - 1, f"restart {n} came before its backoff of {delay} s"
        clock.advance(0.02)
        dispatcher.run_until_idle()
        assert len(restarts) == n
    kid.tell("inc")
    assert kid.ask("count").result(1) == 1


def test_backoff_resets_after_a_quiet_period(det: Runtime) -> None:
    strategy = ExponentialBackoffStrategy(initial=1.0, maximum=60.0, jitter=0.0, reset_after=10.0)
    from nexus.core import RestartStatistics

    stats = RestartStatistics()
    for now in (0.0, 1.0, 2.0):
        stats.record_failure(now)
    assert strategy.delay_for(stats, 2.0) == 4.0
    stats.record_failure(100.0)
    assert strategy.delay_for(stats, 100.0) == 1.0


def test_a_constructor_that_keeps_failing_ends_stopped(runtime: Runtime) -> None:
    system = runtime.system
    attempts: list[int] = []

    class Broken(Actor):
        def __init__(self) -> None:
            attempts.append(1)
            raise OSError("cannot open the device")

        def receive(self, ctx: Context, message: Any) -> None:  # pragma: no cover - never constructed
            pass

    class Owner(Actor):
        def started(self, ctx: Context) -> None:
            ctx.watch(ctx.spawn_named(Broken, "broken"))

        def receive(self, ctx: Context, message: Any) -> None:
            if isinstance(message, Terminated):
                self.gone = message.who
            elif message == "gone?":
                ctx.respond(getattr(self, "gone", None))

    owner = system.spawn(Props.from_class(Owner).with_supervisor(OneForOneStrategy(max_restarts=2, within=60)))
    runtime.wait_until(lambda: owner.ask("gone?", timeout=5).result(5) is not None)
    assert len(attempts) == 3


def test_builder_is_data_and_builds_the_matching_strategy() -> None:
    builder = SupervisorBuilder().all_for_one().on(ValueError, Directive.RESUME).restarts(5, within=30.0)
    assert builder.failure == FailureStrategy(Scope.ALL_FOR_ONE, ((ValueError, Directive.RESUME),), Directive.RESTART)
    assert builder.lifecycle == LifecyclePolicy(max_restarts=5, within=30.0)
    strategy = builder.build()
    assert isinstance(strategy, AllForOneStrategy)
    assert (strategy.max_restarts, strategy.within) == (5, 30.0)
    assert strategy.decider(ValueError()) is Directive.RESUME
    assert strategy.decider(RuntimeError()) is Directive.RESTART
    backoff = SupervisorBuilder(lifecycle=LifecyclePolicy(backoff=Backoff(initial=0.5))).build()
    assert isinstance(backoff, ExponentialBackoffStrategy) and backoff.initial == 0.5
    with pytest.raises(ValueError, match="one-for-one"):
        SupervisorBuilder().all_for_one().backoff().build()
    with pytest.raises(TypeError, match="exception class"):
        SupervisorBuilder().on("ValueError", Directive.STOP)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_restarts"):
        OneForOneStrategy(max_restarts=-1)


def test_decider_picks_the_closest_rule_and_escalates_non_exceptions() -> None:
    decide = decider_from_rules({LookupError: Directive.STOP, KeyError: Directive.RESUME}, default=Directive.RESTART)
    assert decide(KeyError()) is Directive.RESUME
    assert decide(IndexError()) is Directive.STOP
    assert decide(ValueError()) is Directive.RESTART
    assert decide(KeyboardInterrupt()) is Directive.ESCALATE
