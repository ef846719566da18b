"""The actor context: watch, stop/poison, receive timeout, stash, become, reenter_after, expect."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from nexus.core import (
    Actor,
    ActorRef,
    ActorStoppingError,
    Context,
    ExpectTimeoutError,
    Future,
    NotInfluenceReceiveTimeout,
    PoisonPill,
    Props,
    ReceiveTimeout,
    Terminated,
)

from ..conftest import Runtime


class Recorder(Actor):
    """Records everything it receives; answers "log" with the record."""

    def __init__(self) -> None:
        self.log: list[Any] = []

    def receive(self, ctx: Context, message: Any) -> None:
        if message == "log":
            ctx.respond(list(self.log))
        elif isinstance(message, tuple) and message[0] == "watch":
            ctx.watch(message[1])
            ctx.respond("watching")
        elif isinstance(message, tuple) and message[0] == "unwatch":
            ctx.unwatch(message[1])
            ctx.respond("unwatched")
        else:
            self.log.append(message)


class Idle(Actor):
    def receive(self, ctx: Context, message: Any) -> None:
        ctx.respond(message)


def _when_stopped(runtime: Runtime, target: ActorRef) -> threading.Event:
    """Set once ``target`` has finished stopping: every Terminated notice it sends has been posted by then."""
    from nexus.core.events import ActorStopped

    stopped = threading.Event()
    runtime.system.event_stream.subscribe(ActorStopped, lambda e: e.actor == target and stopped.set())
    return stopped


# ---- respond, forward, request -------------------------------------------------


def test_forward_keeps_the_original_sender_and_request_sets_self(runtime: Runtime) -> None:
    system = runtime.system

    class Echo(Actor):
        def receive(self, ctx: Context, message: Any) -> None:
            ctx.respond(("echo", message, ctx.sender is not None))

    class Front(Actor):
        def __init__(self, echo: ActorRef) -> None:
            self.echo = echo
            self.replies: list[Any] = []

        def receive(self, ctx: Context, message: Any) -> None:
            if message == "forward":
                ctx.forward(self.echo)
            elif message == "request":
                ctx.request(self.echo, "via-request")
                ctx.respond("sent")
            elif message == "replies":
                ctx.respond(self.replies)
            else:
                self.replies.append(message)

    echo = system.spawn(Echo)
    front = system.spawn(Props.from_class(Front, echo))
    assert front.ask("forward", timeout=5).result(5) == ("echo", "forward", True)
    assert front.ask("request", timeout=5).result(5) == "sent"
    runtime.wait_until(lambda: front.ask("replies", timeout=5).result(5) == [("echo", "via-request", True)])


# ---- watch ----------------------------------------------------------------------


def test_terminated_is_delivered_exactly_once(runtime: Runtime) -> None:
    system = runtime.system
    watcher = system.spawn(Recorder)
    target = system.spawn(Idle)
    assert watcher.ask(("watch", target), timeout=5).result(5) == "watching"
    assert watcher.ask(("watch", target), timeout=5).result(5) == "watching"  # twice: still one notice
    stopped = _when_stopped(runtime, target)
    system.stop(target).result(5)
    runtime.wait_until(stopped.is_set)
    runtime.wait_until(lambda: watcher.ask("log", timeout=5).result(5) == [Terminated(target)])
    runtime.settle()
    # Every notice was posted before ActorStopped, and the watcher takes them before a later ask: a second one shows here.
    assert watcher.ask("log", timeout=5).result(5) == [Terminated(target)]


def test_watching_an_already_dead_actor_delivers_terminated_at_once(runtime: Runtime) -> None:
    system = runtime.system
    watcher = system.spawn(Recorder)
    target = system.spawn(Idle)
    system.stop(target).result(5)
    watcher.ask(("watch", target), timeout=5).result(5)
    runtime.wait_until(lambda: watcher.ask("log", timeout=5).result(5) == [Terminated(target)])
    nowhere = system.resolve("nexus://test/user/never-existed")
    watcher.ask(("watch", nowhere), timeout=5).result(5)
    runtime.wait_until(lambda: watcher.ask("log", timeout=5).result(5) == [Terminated(target), Terminated(nowhere)])


def test_unwatch_means_no_terminated(runtime: Runtime) -> None:
    system = runtime.system
    watcher = system.spawn(Recorder)
    target = system.spawn(Idle)
    watcher.ask(("watch", target), timeout=5).result(5)
    watcher.ask(("unwatch", target), timeout=5).result(5)
    stopped = _when_stopped(runtime, target)
    system.stop(target).result(5)
    runtime.wait_until(stopped.is_set)  # any notice it sent has been posted to the watcher by now
    runtime.settle()
    assert watcher.ask("log", timeout=5).result(5) == []


# ---- stop and poison -------------------------------------------------------------


def test_stop_jumps_the_queue_and_poison_waits_its_turn(det: Runtime) -> None:
    system, dispatcher = det.system, det.dispatcher
    first = system.spawn(Recorder)
    second = system.spawn(Recorder)
    dispatcher.run_until_idle()
    letters: list[Any] = []
    from nexus.core import DeadLetter

    system.event_stream.subscribe(DeadLetter, lambda d: letters.append(d.message))
    for i in range(3):
        first.tell(i)
        second.tell(i)
    stopped = system.stop(first)
    poisoned = system.poison(second)
    second.tell("after the pill")
    dispatcher.run_until_idle()
    assert stopped.done() and poisoned.done()
    assert stopped.result() is None and poisoned.result() is None
    assert letters == [0, 1, 2, "after the pill"]  # stop dropped the queue; poison processed it first


def test_ctx_stop_self_ends_the_turn(runtime: Runtime) -> None:
    system = runtime.system
    handled: list[int] = []

    class Quitter(Actor):
        def receive(self, ctx: Context, message: Any) -> None:
            handled.append(message)
            if message == 2:
                ctx.stop()

    ref = system.spawn(Quitter)
    for i in range(5):
        ref.tell(i)
    runtime.wait_until(lambda: ref not in system.actors())
    assert handled == [0, 1, 2]


def test_poison_pill_as_a_message(runtime: Runtime) -> None:
    system = runtime.system
    ref = system.spawn(Recorder)
    watcher = system.spawn(Recorder)
    watcher.ask(("watch", ref), timeout=5).result(5)
    ref.tell("a")
    ref.tell(PoisonPill())
    runtime.wait_until(lambda: watcher.ask("log", timeout=5).result(5) == [Terminated(ref)])


# ---- receive timeout ---------------------------------------------------------


class Sleepy(Actor):
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.events: list[Any] = []

    def started(self, ctx: Context) -> None:
        ctx.set_receive_timeout(self.timeout)

    def receive(self, ctx: Context, message: Any) -> None:
        if isinstance(message, Probe):
            ctx.respond(list(self.events))
        elif message == "cancel":
            ctx.cancel_receive_timeout()
        elif isinstance(message, ReceiveTimeout):
            self.events.append("timeout")
        else:
            self.events.append(message)


class Quiet(NotInfluenceReceiveTimeout):
    pass


class Probe(NotInfluenceReceiveTimeout):
    """Asks for the events without resetting the receive timeout."""


def test_receive_timeout_fires_when_idle_and_resets_on_messages(det: Runtime) -> None:
    system, dispatcher, clock = det.system, det.dispatcher, det.clock
    assert clock is not None
    ref = system.spawn(Props.from_class(Sleepy, 1.0))
    dispatcher.run_until_idle()
    clock.advance(0.6)
    ref.tell("poke")  # resets the timer
    dispatcher.run_until_idle()
    clock.advance(0.6)
    dispatcher.run_until_idle()
    assert ref.ask(Probe()).result(1) == ["poke"]
    clock.advance(0.5)
    dispatcher.run_until_idle()
    assert ref.ask(Probe()).result(1) == ["poke", "timeout"]
    ref.tell(Quiet())  # does not reset
    dispatcher.run_until_idle()
    clock.advance(1.0)
    dispatcher.run_until_idle()
    events = ref.ask(Probe()).result(1)
    assert events == ["poke", "timeout", events[2], "timeout"] and isinstance(events[2], Quiet)
    ref.tell("cancel")
    dispatcher.run_until_idle()
    before = len(ref.ask(Probe()).result(1))
    clock.advance(10)
    dispatcher.run_until_idle()
    assert len(ref.ask(Probe()).result(1)) == before


def test_receive_timeout_with_real_time(system: Any) -> None:
    ref = system.spawn(Props.from_class(Sleepy, 0.05))
    from ..conftest import wait_until

    wait_until(lambda: "timeout" in ref.ask(Probe()).result(5))


def test_receive_timeout_rejects_nonsense(runtime: Runtime) -> None:
    class Bad(Actor):
        def receive(self, ctx: Context, message: Any) -> None:
            ctx.set_receive_timeout(0)

    with pytest.raises(ValueError, match="positive"):
        runtime.system.spawn(Bad).ask("x", timeout=5).result(5)


# ---- stash and behaviour ---------------------------------------------------------


def test_stash_and_unstash_all_keep_order(runtime: Runtime) -> None:
    class Gate(Actor):
        def __init__(self) -> None:
            self.open = False
            self.seen: list[Any] = []

        def receive(self, ctx: Context, message: Any) -> None:
            if message == "open":
                self.open = True
                ctx.unstash_all()
            elif message == "seen":
                ctx.respond(self.seen)
            elif not self.open:
                ctx.stash()
            else:
                self.seen.append(message)

    ref = runtime.system.spawn(Gate)
    for i in range(5):
        ref.tell(i)
    ref.tell("open")
    ref.tell(5)
    assert ref.ask("seen", timeout=5).result(5) == [0, 1, 2, 3, 4, 5]


def test_become_and_unbecome_stack_behaviours(runtime: Runtime) -> None:
    def angry(ctx: Context, message: Any) -> None:
        if message == "calm down":
            ctx.unbecome()
        else:
            ctx.respond("grr")

    def shouting(ctx: Context, message: Any) -> None:
        if message == "calm down":
            ctx.unbecome()
        else:
            ctx.respond("HELLO")

    class Mood(Actor):
        def receive(self, ctx: Context, message: Any) -> None:
            if message == "anger":
                ctx.become_stacked(angry)
            elif message == "shout":
                ctx.become_stacked(shouting)
            else:
                ctx.respond("hello")

    ref = runtime.system.spawn(Mood)
    assert ref.ask("hi", timeout=5).result(5) == "hello"
    ref.tell("anger")
    assert ref.ask("hi", timeout=5).result(5) == "grr"
    ref.tell("calm down")
    assert ref.ask("hi", timeout=5).result(5) == "hello"

    def replaced(ctx: Context, message: Any) -> None:
        ctx.respond("replaced")

    class Switch(Actor):
        def receive(self, ctx: Context, message: Any) -> None:
            ctx.become(replaced)
            ctx.respond("switched")

    sw = runtime.system.spawn(Switch)
    assert sw.ask(1, timeout=5).result(5) == "switched"
    assert sw.ask(2, timeout=5).result(5) == "replaced"


def test_behaviour_is_reset_by_a_restart(runtime: Runtime) -> None:
    def broken(ctx: Context, message: Any) -> None:
        raise RuntimeError("broken behaviour")

    class Resettable(Actor):
        def receive(self, ctx: Context, message: Any) -> None:
            if message == "break":
                ctx.become(broken)
            ctx.respond("fine")

    ref = runtime.system.spawn(Resettable)
    ref.tell("break")
    with pytest.raises(RuntimeError):
        ref.ask("x", timeout=5).result(5)
    assert ref.ask("x", timeout=5).result(5) == "fine"


# ---- reenter_after ---------------------------------------------------------------


def test_reenter_after_runs_on_the_actors_turn_never_concurrently(system: Any) -> None:
    results: list[Any] = []
    overlaps: list[str] = []
    lock = threading.Lock()

    class Busy(Actor):
        def __init__(self) -> None:
            self.inside = False

        def _enter(self) -> None:
            with lock:
                if self.inside:
                    overlaps.append("overlap")
                self.inside = True

        def _leave(self) -> None:
            with lock:
                self.inside = False

        def receive(self, ctx: Context, message: Any) -> None:
            self._enter()
            try:
                if isinstance(message, Future):
                    original = ctx.message

                    def continuation(done: Future[Any]) -> None:
                        self._enter()
                        try:
                            time.sleep(0.001)
                            results.append((done.result(), ctx.message is original))
                        finally:
                            self._leave()

                    ctx.reenter_after(message, continuation)
                else:
                    time.sleep(0.001)
            finally:
                self._leave()

    ref = system.spawn(Busy)
    futures: list[Future[int]] = [Future() for _ in range(20)]
    for fut in futures:
        ref.tell(fut)

    def complete() -> None:
        for i, fut in enumerate(futures):
            fut.set_result(i)
            ref.tell("work")

    completer = threading.Thread(target=complete)
    completer.start()
    for _ in range(50):
        ref.tell("work")
    completer.join()
    from ..conftest import wait_until

    wait_until(lambda: len(results) == 20)
    assert overlaps == []
    assert sorted(r[0] for r in results) == list(range(20))
    assert all(r[1] for r in results)  # ctx.message restored for the continuation


def test_reenter_after_with_an_ask_to_another_actor(runtime: Runtime) -> None:
    class Doubler(Actor):
        def receive(self, ctx: Context, message: Any) -> None:
            ctx.respond(message * 2)

    class Client(Actor):
        def __init__(self, doubler: ActorRef) -> None:
            self.doubler = doubler

        def receive(self, ctx: Context, message: Any) -> None:
            sender = ctx.sender
            ctx.reenter_after(ctx.ask(self.doubler, message, timeout=5), lambda f: sender.tell(f.result() + 1))

    doubler = runtime.system.spawn(Doubler)
    client = runtime.system.spawn(Props.from_class(Client, doubler))
    assert client.ask(20, timeout=5).result(5) == 41


# ---- expect ----------------------------------------------------------------------


class Negotiator(Actor):
    """On "negotiate", waits for an int offer while other messages stay queued."""

    def __init__(self) -> None:
        self.log: list[Any] = []

    def receive(self, ctx: Context, message: Any) -> None:
        if message == "negotiate":
            sender = ctx.sender
            try:
                offer = ctx.expect(int, timeout=2.0)
                self.log.append(("offer", offer))
            except ExpectTimeoutError:
                self.log.append("no offer")
            if sender is not None:
                sender.tell("negotiated")
        elif message == "log":
            ctx.respond(list(self.log))
        else:
            self.log.append(message)


def test_expect_takes_the_match_and_keeps_the_others_in_order(sync_runtime: Runtime) -> None:
    system = sync_runtime.system
    ref = system.spawn(Negotiator)
    done = ref.ask("negotiate", timeout=5)
    ref.tell("a")
    ref.tell("b")
    ref.tell(42)
    ref.tell("c")
    assert done.result(5) == "negotiated"
    assert ref.ask("log", timeout=5).result(5) == [("offer", 42), "a", "b", "c"]


def test_expect_with_a_predicate_and_from_another_thread(system: Any) -> None:
    expecting = threading.Event()

    class Waiter(Actor):
        def receive(self, ctx: Context, message: Any) -> None:
            if message == "wait":
                expecting.set()
                got = ctx.expect(lambda m: isinstance(m, str) and m.startswith("go"), timeout=20)
                ctx.respond(got)

    ref = system.spawn(Waiter)
    fut = ref.ask("wait", timeout=20)

    def later() -> None:
        assert expecting.wait(20)  # the actor is in (or about to enter) expect
        ref.tell("nope")
        ref.tell("go!")

    thread = threading.Thread(target=later)
    thread.start()
    assert fut.result(20) == "go!"
    thread.join(20)


def test_expect_timeout_raises(det: Runtime) -> None:
    class Impatient(Actor):
        def receive(self, ctx: Context, message: Any) -> None:
            try:
                ctx.expect(int, timeout=0.5)
            except ExpectTimeoutError as exc:
                ctx.respond(f"timed out: {isinstance(exc, TimeoutError)}")

    ref = det.system.spawn(Impatient)
    ref.tell("noise")
    assert ref.ask("start").result(1) == "timed out: True"
    assert det.clock is not None and det.clock.now() >= 0.5  # virtual time moved, no sleeping


def test_expect_timeout_with_real_time(system: Any) -> None:
    class Impatient(Actor):
        def receive(self, ctx: Context, message: Any) -> None:
            started = time.monotonic()
            with pytest.raises(ExpectTimeoutError):
                ctx.expect(int, timeout=0.05)
            ctx.respond(time.monotonic() - started)

    assert system.spawn(Impatient).ask("go").result(5) >= 0.05


def test_expect_sees_terminated_of_a_watched_actor(system: Any) -> None:
    class Mourner(Actor):
        def receive(self, ctx: Context, message: Any) -> None:
            ctx.watch(message)
            ctx.stop(message)
            ctx.respond(ctx.expect(Terminated, timeout=5).who)

    target = system.spawn(Idle)
    assert system.spawn(Mourner).ask(target).result(5) == target


def test_stop_abandons_a_blocked_expect(system: Any) -> None:
    outcome: list[str] = []
    entered = threading.Event()

    class Stubborn(Actor):
        def receive(self, ctx: Context, message: Any) -> None:
            entered.set()
            try:
                ctx.expect(int, timeout=30)
            except ActorStoppingError:
                outcome.append("abandoned")
                raise

    ref = system.spawn(Stubborn)
    ref.tell("start")
    assert entered.wait(20)
    system.stop(ref).result(20)
    assert outcome == ["abandoned"]


def test_a_reply_to_a_dead_asker_goes_to_dead_letters(runtime: Runtime) -> None:
    from nexus.core import DeadLetter

    system = runtime.system
    letters: list[DeadLetter] = []
    system.event_stream.subscribe(DeadLetter, letters.append)

    class Holder(Actor):
        def __init__(self) -> None:
            self.waiting: list[ActorRef] = []

        def receive(self, ctx: Context, message: Any) -> None:
            if message == "question":
                self.waiting.append(ctx.sender)
            elif message == "answer":
                for sender in self.waiting:
                    sender.tell("late answer", ctx.self)
                ctx.respond("answered")

    class Asker(Actor):
        def __init__(self, holder: ActorRef) -> None:
            self.holder = holder

        def receive(self, ctx: Context, message: Any) -> None:
            ctx.request(self.holder, "question")
            ctx.respond("asked")

    holder = system.spawn(Holder)
    asker = system.spawn(Props.from_class(Asker, holder))
    assert asker.ask("go", timeout=5).result(5) == "asked"
    system.stop(asker).result(5)
    assert holder.ask("answer", timeout=5).result(5) == "answered"
    runtime.wait_until(lambda: any(letter.message == "late answer" and letter.target == asker for letter in letters))
