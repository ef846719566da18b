"""An actor's lifecycle at the head: states, its calls in order, bounded mailboxes, pending limits, restarts."""

from __future__ import annotations

import pytest

from nexus.cluster.state.actors import ActorRecord, ActorStatus, Admission
from nexus.cluster.state.tasks import CallRecord
from nexus.cluster.state.workers import InvalidTransitionError
from nexus.core.errors import ActorDiedError
from nexus.core.mailbox import MailboxSpec, OverflowPolicy

from .stand_ins import StandInBlob, new_id, ready_worker


def actor(**options: object) -> ActorRecord:
    a = ActorRecord(0xAB, "Counter", None, "default")
    a.set_options(dict(options))
    return a


def alive(**options: object) -> ActorRecord:
    a = actor(**options)
    a.placed(ready_worker())
    a.started(sequential=True, concurrency=1)
    return a


def call(method: str = "m", results: int = 1, missing: int = 0, retries: int = 0) -> CallRecord:
    c = CallRecord(new_id(), method, StandInBlob(), [], [new_id() for _ in range(results)])
    c.missing = missing
    c.retries = retries
    return c


def sent(a: ActorRecord, n: int, retries: int = 0) -> list[CallRecord]:
    """``n`` calls queued and sent (in flight: answers pending)."""
    calls = [call(retries=retries) for _ in range(n)]
    a.queue.extend(calls)
    for _ in calls:
        assert a.sendable() is not None
    return calls


# -- lifecycle -----------------------------------------------------------------------------


def test_an_actor_is_placed_then_started_then_takes_calls() -> None:
    a = actor()
    assert a.state is ActorStatus.PENDING and not a.ready
    w = ready_worker()
    a.placed(w)
    assert a.state is ActorStatus.STARTING and a.worker is w and w.actor is a
    a.started(sequential=False, concurrency=4)
    assert a.ready and a.concurrency == 4 and not a.sequential


def test_an_actor_runs_at_least_one_call_at_a_time() -> None:
    a = actor()
    a.placed(ready_worker())
    a.started(sequential=False, concurrency=0)
    assert a.concurrency == 1


def test_an_actor_cannot_take_calls_before_its_constructor_ran() -> None:
    with pytest.raises(InvalidTransitionError, match=r"actor Counter \(ab\) cannot go from pending to alive"):
        actor().started(sequential=True, concurrency=1)


def test_a_dead_actor_cannot_come_back() -> None:
    a = alive(max_restarts=-1)
    a.die("killed")
    for state in ActorStatus:
        with pytest.raises(InvalidTransitionError):
            a.to(state)
    with pytest.raises(InvalidTransitionError):
        a.placed(ready_worker())
    with pytest.raises(InvalidTransitionError):
        a.begin_restart()
    assert a.state is ActorStatus.DEAD


def test_an_actor_waiting_for_its_arguments_can_die_but_not_restart() -> None:
    a = actor(max_restarts=3)
    with pytest.raises(InvalidTransitionError, match="from pending to restarting"):
        a.begin_restart()
    a.die("its constructor's argument failed")
    assert a.state is ActorStatus.DEAD


def test_why_an_actor_died_is_an_actor_died_error_naming_it() -> None:
    a = alive()
    a.die("its worker-0 exited with code -9")
    assert isinstance(a.dead, ActorDiedError)
    assert str(a.dead) == "actor Counter (ab) died: its worker-0 exited with code -9"


def test_an_exception_an_actor_died_of_is_kept_as_it_is() -> None:
    a = alive()
    why = ActorDiedError("killed with nexus.kill")
    a.die(why)
    assert a.dead is why


# -- calls ---------------------------------------------------------------------------------


def test_calls_wait_until_the_actor_is_alive() -> None:
    a = actor()
    a.queue.append(call())
    assert a.sendable() is None
    a.placed(ready_worker())
    assert a.sendable() is None  # its constructor runs
    a.started(sequential=True, concurrency=1)
    assert a.sendable() is not None


def test_calls_are_sent_in_order_and_one_waiting_for_arguments_holds_back_its_callers_rest() -> None:
    a = alive()
    first, waiting, third = call("a"), call("b", missing=1), call("c")
    a.queue.extend([first, waiting, third])
    assert a.sendable() is first
    assert a.sendable() is None  # "c" is ready but must not overtake "b"
    waiting.missing = 0
    assert a.sendable() is waiting
    assert a.sendable() is third
    assert a.sendable() is None
    assert list(a.inflight) == [first.call_id, waiting.call_id, third.call_id]


def test_a_call_of_another_caller_overtakes_one_waiting_for_its_arguments() -> None:
    a = alive()
    waiting, same_caller, other, others_next = call("a", missing=1), call("b"), call("c"), call("d")
    waiting.parent = same_caller.parent = 7  # (made by task 7; the others by task 9)
    other.parent = others_next.parent = 9
    a.queue.extend([waiting, same_caller, other, others_next])
    assert a.sendable() is other and a.sendable() is others_next
    assert a.sendable() is None  # "b" stays behind "a", of its caller
    waiting.missing = 0
    assert a.sendable() is waiting and a.sendable() is same_caller


def test_a_call_without_results_is_not_pending_once_sent() -> None:
    a = alive()
    a.queue.append(call(results=0))  # a tell: no answer is waited for
    assert a.sendable() is not None
    assert a.pending == 0 and a.inflight == {}


def test_pending_calls_count_queued_and_running_ones_against_max_pending_calls() -> None:
    a = alive(max_pending_calls=2)
    sent(a, 1)
    assert not a.over_pending_limit()
    a.queue.append(call(missing=1))
    assert a.pending == 2 and a.over_pending_limit()


def test_without_max_pending_calls_there_is_no_limit() -> None:
    a = alive()
    sent(a, 100)
    assert not a.over_pending_limit()


def test_a_sequential_actor_holds_calls_back_sooner_than_a_concurrent_one() -> None:
    a = actor()
    a.placed(ready_worker())
    a.started(sequential=False, concurrency=8)
    assert a.coalesce_after() == 9  # as many as may run, and one waiting in the channel
    assert alive().coalesce_after() == 2


def test_taking_all_calls_leaves_none_queued_or_running() -> None:
    a = alive()
    running = sent(a, 2)
    queued = call(missing=1)
    a.queue.append(queued)
    assert a.take_all_calls() == [queued, *running]
    assert a.pending == 0


# -- bounded mailboxes ---------------------------------------------------------------------


def bounded(capacity: int, overflow: OverflowPolicy) -> ActorRecord:
    return alive(mailbox=MailboxSpec.bounded(capacity, overflow))


def test_an_unbounded_actor_admits_every_call() -> None:
    a = alive()
    sent(a, 1000)
    assert a.admit() is Admission.ADMIT


@pytest.mark.parametrize("overflow", list(OverflowPolicy))
def test_a_bounded_mailbox_admits_while_it_has_room(overflow: OverflowPolicy) -> None:
    a = bounded(2, overflow)
    sent(a, 1)
    assert a.admit() is Admission.ADMIT


@pytest.mark.parametrize(
    ("overflow", "admission"),
    [(OverflowPolicy.FAIL, Admission.FAIL), (OverflowPolicy.DROP_NEWEST, Admission.DROP_NEW), (OverflowPolicy.BLOCK, Admission.WAIT)],
)
def test_a_full_mailbox_applies_its_overflow_policy(overflow: OverflowPolicy, admission: Admission) -> None:
    a = bounded(2, overflow)
    sent(a, 1)
    a.queue.append(call(missing=1))
    assert a.admit() is admission


def test_drop_oldest_admits_while_a_queued_call_can_be_dropped() -> None:
    a = bounded(2, OverflowPolicy.DROP_OLDEST)
    sent(a, 1)
    a.queue.append(call(missing=1))
    assert a.admit() is Admission.DROP_OLDEST
    a.queue.popleft()  # the head drops the oldest queued call
    assert a.admit() is Admission.ADMIT


def test_drop_oldest_waits_when_every_call_is_already_running() -> None:
    a = bounded(2, OverflowPolicy.DROP_OLDEST)
    sent(a, 2)
    assert a.admit() is Admission.WAIT


def test_a_dead_actor_admits_calls_so_that_they_fail_with_actor_died_error() -> None:
    a = bounded(1, OverflowPolicy.FAIL)
    sent(a, 1)
    a.die("killed")
    assert a.admit() is Admission.ADMIT


# -- restarts ------------------------------------------------------------------------------


@pytest.mark.parametrize(("max_restarts", "restarts"), [(0, 0), (None, 0), (2, 2)])
def test_an_actor_out_of_restarts_may_not_restart(max_restarts: int | None, restarts: int) -> None:
    a = alive(max_restarts=max_restarts)
    a.restarts = restarts
    assert not a.may_restart()


def test_an_actor_restarts_as_often_as_max_restarts_says() -> None:
    a = alive(max_restarts=2)
    for _ in range(2):
        assert a.may_restart()
        a.begin_restart()
        a.placed(ready_worker())
        a.started(sequential=True, concurrency=1)
    assert a.restarts == 2 and not a.may_restart()


def test_an_actor_with_max_restarts_minus_one_restarts_forever() -> None:
    a = alive(max_restarts=-1)
    a.restarts = 10_000
    assert a.may_restart()


def test_a_restarting_actor_has_no_worker_and_takes_no_calls_until_placed_again() -> None:
    a = alive(max_restarts=1)
    a.begin_restart()
    assert a.state is ActorStatus.RESTARTING and a.worker is None
    a.queue.append(call())
    assert a.sendable() is None


def test_an_actor_can_restart_while_its_constructor_runs_again() -> None:
    a = actor(max_restarts=-1)
    a.placed(ready_worker())
    a.begin_restart()  # its process died before the constructor returned
    assert a.state is ActorStatus.RESTARTING


def test_a_restarting_actor_cannot_restart_again_before_it_is_placed() -> None:
    a = alive(max_restarts=-1)
    a.begin_restart()
    with pytest.raises(InvalidTransitionError, match="from restarting to restarting"):
        a.begin_restart()


def test_restart_retries_calls_with_retries_left_and_fails_the_others() -> None:
    a = alive(max_restarts=1)
    once, never, always = sent(a, 1, retries=1) + sent(a, 1, retries=0) + sent(a, 1, retries=-1)
    queued = call(missing=1)
    a.queue.append(queued)
    retried, failed = a.begin_restart()
    assert retried == [once, always] and failed == [never]
    assert (once.retries, always.retries) == (0, -1)
    assert list(a.queue) == [once, always, queued]  # the retried go first, in the order they were sent
    assert a.inflight == {}


def test_a_retried_call_uses_up_its_retries() -> None:
    a = alive(max_restarts=-1)
    (c,) = sent(a, 1, retries=1)
    a.begin_restart()
    a.placed(ready_worker())
    a.started(sequential=True, concurrency=1)
    assert a.sendable() is c
    retried, failed = a.begin_restart()
    assert retried == [] and failed == [c]


def test_an_actor_takes_its_restart_options() -> None:
    a = actor(max_restarts=3, max_task_retries=-1, max_pending_calls=5)
    assert (a.max_restarts, a.max_task_retries, a.max_pending) == (3, -1, 5)
    b = actor()
    assert (b.max_restarts, b.max_task_retries, b.max_pending, b.mailbox) == (0, 0, -1, None)


def test_max_pending_calls_zero_is_not_mistaken_for_no_limit() -> None:
    a = alive(max_pending_calls=0)
    assert a.max_pending != -1
