"""Mailbox kinds: bounded mailboxes under each overflow policy, ordered system lane, statistics."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from nexus.core import (
    Actor,
    ActorSystem,
    Context,
    DeadLetter,
    MailboxFullError,
    MailboxKind,
    MailboxSpec,
    MessageDropped,
    OverflowPolicy,
    Props,
)

from ..conftest import Runtime, wait_until


class Collector(Actor):
    def __init__(self) -> None:
        self.got: list[Any] = []

    def receive(self, ctx: Context, message: Any) -> None:
        if message == "got":
            ctx.respond(list(self.got))
        else:
            self.got.append(message)


class Gated(Actor):
    """Blocks on a gate inside its first message, so its mailbox fills up."""

    def __init__(self, gate: threading.Event, entered: threading.Event) -> None:
        self.gate = gate
        self.entered = entered
        self.got: list[Any] = []

    def receive(self, ctx: Context, message: Any) -> None:
        if message == "wait":
            self.entered.set()
            self.gate.wait(10)
        elif message == "got":
            ctx.respond(list(self.got))
        else:
            self.got.append(message)


def _bounded(policy: OverflowPolicy, capacity: int = 3, block_timeout: float | None = None) -> Props:
    return Props.from_class(Collector).with_mailbox(MailboxSpec.bounded(capacity, policy, block_timeout))


def _stats(ref: Any) -> Any:
    stats = ref._cell._system.mailbox_statistics(ref)
    assert stats is not None
    return stats


def test_drop_newest_keeps_the_first_and_reports_the_rest(det: Runtime) -> None:
    system = det.system
    dropped: list[MessageDropped] = []
    letters: list[DeadLetter] = []
    system.event_stream.subscribe(MessageDropped, dropped.append)
    system.event_stream.subscribe(DeadLetter, letters.append)
    ref = system.spawn(_bounded(OverflowPolicy.DROP_NEWEST))
    for i in range(6):
        ref.tell(i)  # nothing runs until the dispatcher does: the mailbox fills
    stats = _stats(ref)
    assert (stats.depth, stats.capacity, stats.dropped, stats.kind) == (3, 3, 3, MailboxKind.BACKPRESSURE)
    det.settle()
    assert ref.ask("got").result(1) == [0, 1, 2]
    assert [d.message for d in dropped] == [3, 4, 5] and [d.message for d in letters] == [3, 4, 5]
    assert all("drop-newest" in d.reason for d in letters)


def test_drop_oldest_keeps_the_latest(det: Runtime) -> None:
    system = det.system
    letters: list[DeadLetter] = []
    system.event_stream.subscribe(DeadLetter, letters.append)
    ref = system.spawn(_bounded(OverflowPolicy.DROP_OLDEST))
    for i in range(6):
        ref.tell(i)
    det.settle()
    assert ref.ask("got").result(1) == [3, 4, 5]
    assert [d.message for d in letters] == [0, 1, 2]
    assert _stats(ref).dropped == 3


def test_fail_raises_at_the_sender(det: Runtime) -> None:
    ref = det.system.spawn(_bounded(OverflowPolicy.FAIL))
    for i in range(3):
        ref.tell(i)
    with pytest.raises(MailboxFullError, match="overflow policy is FAIL"):
        ref.tell(3)
    det.settle()
    assert ref.ask("got").result(1) == [0, 1, 2]


def test_an_ask_dropped_by_the_policy_fails_fast(det: Runtime) -> None:
    from nexus.core import DeadLetterError

    ref = det.system.spawn(_bounded(OverflowPolicy.DROP_NEWEST, capacity=1))
    ref.tell("first")
    with pytest.raises(DeadLetterError, match="drop-newest"):
        ref.ask("second").result(1)


def test_block_makes_the_sender_wait_for_room(system: ActorSystem) -> None:
    gate, entered = threading.Event(), threading.Event()
    spec = MailboxSpec.bounded(2, OverflowPolicy.BLOCK)
    ref = system.spawn(Props.from_class(Gated, gate, entered).with_mailbox(spec))
    ref.tell("wait")
    assert entered.wait(20)
    ref.tell(1)
    ref.tell(2)  # the mailbox is now full
    sent: list[int] = []

    def sender() -> None:
        ref.tell(3)  # blocks until the actor takes a message
        sent.append(3)

    thread = threading.Thread(target=sender)
    thread.start()
    room = ref._cell._mailbox._queue._not_full  # the condition a blocked sender waits on
    wait_until(lambda: len(room._waiters) == 1, timeout=20)  # the sender waits for room...
    assert sent == [] and thread.is_alive()  # ...and has not returned
    gate.set()
    thread.join(20)
    assert sent == [3]
    assert ref.ask("got").result(20) == [1, 2, 3]


def test_block_with_a_timeout_raises(system: ActorSystem) -> None:
    gate, entered = threading.Event(), threading.Event()
    spec = MailboxSpec.bounded(1, OverflowPolicy.BLOCK, block_timeout=0.05)
    ref = system.spawn(Props.from_class(Gated, gate, entered).with_mailbox(spec))
    ref.tell("wait")
    assert entered.wait(20)
    ref.tell(1)
    with pytest.raises(MailboxFullError, match="stayed full"):
        ref.tell(2)
    gate.set()
    assert ref.ask("got").result(20) == [1]


def test_block_refuses_to_deadlock_on_the_own_mailbox(det: Runtime) -> None:
    class SelfSender(Actor):
        def receive(self, ctx: Context, message: Any) -> None:
            if message == "flood":
                try:
                    for i in range(5):
                        ctx.self.tell(i)
                except MailboxFullError as exc:
                    ctx.respond(str(exc))

    ref = det.system.spawn(Props.from_class(SelfSender).with_mailbox(MailboxSpec.bounded(2)))
    assert "wait for itself forever" in ref.ask("flood").result(1)


def test_mailbox_spec_validation() -> None:
    with pytest.raises(ValueError, match="positive int capacity"):
        MailboxSpec(MailboxKind.BACKPRESSURE)
    with pytest.raises(ValueError, match="BACKPRESSURE mailboxes only"):
        MailboxSpec(MailboxKind.ORDERED, capacity=3)


@pytest.mark.parametrize("kind", [MailboxKind.LOW_LATENCY, MailboxKind.ORDERED])
def test_unbounded_kinds_keep_fifo_and_count(runtime: Runtime, kind: MailboxKind) -> None:
    ref = runtime.system.spawn(Props.from_class(Collector).with_mailbox(MailboxSpec(kind)))
    for i in range(1000):
        ref.tell(i)
    assert ref.ask("got", timeout=5).result(5) == list(range(1000))
    runtime.wait_until(lambda: _stats(ref).processed == 1001)  # counted at the end of each turn
    stats = _stats(ref)
    assert stats.kind is kind and stats.depth == 0 and stats.dropped == 0


def test_fifo_per_sender_with_many_sending_threads(system: ActorSystem) -> None:
    ref = system.spawn(Props.from_class(Collector).with_mailbox(MailboxSpec(MailboxKind.ORDERED)))

    def send(tag: int) -> None:
        for i in range(2000):
            ref.tell((tag, i))

    threads = [threading.Thread(target=send, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    got = ref.ask("got", timeout=10).result(10)
    assert len(got) == 8000
    for tag in range(4):
        assert [i for t, i in got if t == tag] == list(range(2000))


@pytest.mark.parametrize(("kind", "expected"), [(MailboxKind.ORDERED, [0]), (MailboxKind.LOW_LATENCY, [0, 1, 2, 3, 4])])
def test_ordered_puts_the_system_lane_before_every_user_message(det: Runtime, kind: MailboxKind, expected: list[int]) -> None:
    """A Stop posted while a turn runs: ORDERED sees it before the next message, LOW_LATENCY at the end of the turn."""
    handled: list[int] = []

    class StopsItself(Actor):
        def receive(self, ctx: Context, message: Any) -> None:
            handled.append(message)
            if message == 0:
                ctx.system.stop(ctx.self)  # posted on the system lane, as another actor would

    ref = det.system.spawn(Props.from_class(StopsItself).with_mailbox(MailboxSpec(kind)))
    det.settle()
    for i in range(5):
        ref.tell(i)
    det.settle()
    assert handled == expected
    assert ref not in det.system.actors()


def test_a_bounded_mailbox_with_many_threads_loses_nothing_under_block(system: ActorSystem) -> None:
    ref = system.spawn(_bounded(OverflowPolicy.BLOCK, capacity=8))

    def send(tag: int) -> None:
        for i in range(500):
            ref.tell((tag, i))

    threads = [threading.Thread(target=send, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    wait_until(lambda: len(ref.ask("got", timeout=5).result(5)) == 2000)
    got = ref.ask("got", timeout=5).result(5)
    for tag in range(4):
        assert [i for t, i in got if t == tag] == list(range(500))


def test_statistics_of_a_stopped_actor_are_gone(runtime: Runtime) -> None:
    ref = runtime.system.spawn(Collector)
    assert runtime.system.mailbox_statistics(ref) is not None
    runtime.system.stop(ref).result(5)
    assert runtime.system.mailbox_statistics(ref) is None
