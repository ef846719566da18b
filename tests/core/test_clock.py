"""Clocks: ManualClock driven by hand, SystemClock with its lazily started timer thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from nexus.core import clock as clock_module
from nexus.core.clock import ManualClock, SystemClock, TimerHandle

from ..conftest import wait_until

# ---- ManualClock ----------------------------------------------------------------


def test_manual_clock_starts_where_told_and_moves_only_on_advance() -> None:
    assert ManualClock().now() == 0.0
    clock = ManualClock(start=100.0)
    assert clock.now() == 100.0
    assert clock.now() == 100.0
    assert clock.advance(2.5) == 0
    assert clock.now() == 102.5


def test_manual_clock_fires_nothing_before_the_deadline() -> None:
    clock = ManualClock()
    fired: list[str] = []
    clock.call_later(1.0, fired.append, "x")
    assert clock.advance(0.5) == 0
    assert clock.advance(0.4999) == 0
    assert fired == []
    assert clock.pending_timers() == 1
    assert clock.advance(0.0001) == 1
    assert fired == ["x"]
    assert clock.pending_timers() == 0


def test_manual_clock_fires_due_timers_in_deadline_order_with_their_arguments() -> None:
    clock = ManualClock()
    fired: list[tuple[Any, ...]] = []

    def record(*args: Any) -> None:
        fired.append(args)

    clock.call_later(3.0, record, "c", 3)
    clock.call_later(1.0, record, "a", 1)
    clock.call_later(2.0, record, "b", 2)
    clock.call_later(10.0, record, "late")
    assert clock.advance(5.0) == 3
    assert fired == [("a", 1), ("b", 2), ("c", 3)]
    assert clock.pending_timers() == 1


def test_manual_clock_timers_with_equal_deadlines_fire_in_scheduling_order() -> None:
    clock = ManualClock()
    fired: list[int] = []
    for i in range(10):
        clock.call_later(1.0, fired.append, i)
    assert clock.advance(1.0) == 10
    assert fired == list(range(10))


def test_manual_clock_now_inside_a_timer_is_its_deadline() -> None:
    clock = ManualClock(start=10.0)
    seen: list[tuple[str, float]] = []
    clock.call_later(1.0, lambda: seen.append(("a", clock.now())))
    clock.call_later(2.5, lambda: seen.append(("b", clock.now())))
    clock.advance(5.0)
    assert seen == [("a", 11.0), ("b", 12.5)]
    assert clock.now() == 15.0


def test_manual_clock_zero_and_negative_delays_fire_on_the_next_advance() -> None:
    clock = ManualClock()
    fired: list[str] = []
    clock.call_later(0, fired.append, "zero")
    clock.call_later(-5, fired.append, "negative")
    assert fired == [], "call_later never runs the callback inline"
    assert clock.advance(0) == 2
    assert fired == ["zero", "negative"]
    assert clock.now() == 0.0


def test_manual_clock_negative_advance_is_a_value_error() -> None:
    clock = ManualClock(start=5.0)
    fired: list[int] = []
    clock.call_later(0, fired.append, 1)
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-0.001)
    assert clock.now() == 5.0
    assert fired == [], "a rejected advance fires nothing"


def test_manual_clock_cancel_prevents_firing() -> None:
    clock = ManualClock()
    fired: list[str] = []
    keep = clock.call_later(1.0, fired.append, "keep")
    drop = clock.call_later(1.0, fired.append, "drop")
    assert isinstance(drop, TimerHandle)
    drop.cancel()
    drop.cancel()  # idempotent
    assert drop.cancelled
    assert not keep.cancelled
    assert clock.pending_timers() == 1
    assert clock.advance(2.0) == 1
    assert fired == ["keep"]


def test_manual_clock_cancel_after_firing_is_harmless() -> None:
    clock = ManualClock()
    fired: list[int] = []
    handle = clock.call_later(1.0, fired.append, 1)
    clock.advance(1.0)
    handle.cancel()
    clock.call_later(1.0, fired.append, 2)
    assert clock.advance(1.0) == 1
    assert fired == [1, 2]


def test_manual_clock_a_timer_can_cancel_a_later_one_in_the_same_advance() -> None:
    clock = ManualClock()
    fired: list[str] = []
    later = clock.call_later(2.0, fired.append, "later")
    clock.call_later(1.0, lambda: (fired.append("first"), later.cancel()))
    assert clock.advance(3.0) == 1
    assert fired == ["first"]


def test_manual_clock_a_timer_can_cancel_one_with_the_same_deadline() -> None:
    clock = ManualClock()
    fired: list[str] = []
    handles: list[TimerHandle] = []
    clock.call_later(1.0, lambda: (fired.append("first"), handles[0].cancel()))
    handles.append(clock.call_later(1.0, fired.append, "second"))
    assert clock.advance(1.0) == 1
    assert fired == ["first"]


def test_manual_clock_timers_scheduled_by_a_timer_fire_in_the_same_advance_if_due() -> None:
    clock = ManualClock()
    fired: list[tuple[str, float]] = []

    def tick(n: int) -> None:
        fired.append((f"tick{n}", clock.now()))
        if n < 10:
            clock.call_later(1.0, tick, n + 1)

    clock.call_later(1.0, tick, 1)
    clock.call_later(2.5, lambda: fired.append(("other", clock.now())))
    assert clock.advance(3.5) == 4
    assert fired == [("tick1", 1.0), ("tick2", 2.0), ("other", 2.5), ("tick3", 3.0)]
    # tick4 is scheduled for 4.0, beyond this advance
    assert clock.pending_timers() == 1
    assert clock.now() == 3.5
    assert clock.advance(0.5) == 1
    assert fired[-1] == ("tick4", 4.0)


def test_manual_clock_a_zero_delay_timer_scheduled_by_a_timer_fires_in_the_same_advance() -> None:
    clock = ManualClock()
    fired: list[tuple[str, float]] = []
    clock.call_later(1.0, lambda: clock.call_later(0, lambda: fired.append(("chained", clock.now()))))
    assert clock.advance(1.0) == 2
    assert fired == [("chained", 1.0)]


def test_manual_clock_a_raising_timer_is_logged_and_the_others_still_fire(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    fired: list[str] = []

    def bad() -> None:
        raise RuntimeError("timer bug")

    clock.call_later(1.0, bad)
    clock.call_later(2.0, fired.append, "after")
    with caplog.at_level(logging.ERROR, logger="nexus.core.clock"):
        clock.advance(3.0)
    assert fired == ["after"]
    assert any(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in caplog.records)


def test_manual_clock_many_cancellations_keep_the_rest_correct() -> None:
    clock = ManualClock()
    fired: list[int] = []
    handles = [clock.call_later(float(i % 37) + i / 1000, fired.append, i) for i in range(300)]
    for i, handle in enumerate(handles):
        if i % 4 != 0:
            handle.cancel()
    expected = sorted((i for i in range(300) if i % 4 == 0), key=lambda i: float(i % 37) + i / 1000)
    assert clock.pending_timers() == len(expected)
    assert clock.advance(100.0) == len(expected)
    assert fired == expected
    assert clock.pending_timers() == 0


def test_manual_clock_close_drops_pending_timers() -> None:
    clock = ManualClock()
    fired: list[int] = []
    clock.call_later(1.0, fired.append, 1)
    clock.close()
    assert clock.pending_timers() == 0
    assert clock.advance(5.0) == 0
    assert fired == []


# ---- SystemClock -----------------------------------------------------------------


def _timer_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


@pytest.fixture
def sysclock(request: pytest.FixtureRequest) -> Iterator[SystemClock]:
    clock = SystemClock(name=f"nexus-timer-test-{request.node.name}")
    yield clock
    clock.close()


class _StoppableTime:
    """Stands in for the ``time`` module of nexus.core.clock: ``monotonic()`` holds still while stopped.

    Timers scheduled while time stands still get exactly the deadlines their delays say, however long
    the test thread is held up between two calls on a busy machine.
    """

    def __init__(self) -> None:
        self.stopped_at: float | None = None

    def monotonic(self) -> float:
        return time.monotonic() if self.stopped_at is None else self.stopped_at


@pytest.fixture
def still_time(monkeypatch: pytest.MonkeyPatch) -> _StoppableTime:
    fake = _StoppableTime()
    monkeypatch.setattr(clock_module, "time", fake)
    return fake


def _hold_the_timer_thread(clock: SystemClock) -> threading.Event:
    """Occupy ``clock``'s timer thread with a timer until the returned event is set (nothing else fires meanwhile)."""
    entered, release = threading.Event(), threading.Event()

    def blocker() -> None:
        entered.set()
        release.wait(20)

    clock.call_later(0, blocker)
    assert entered.wait(20), "the timer thread never ran the blocker"
    return release


def test_system_clock_now_is_monotonic_time() -> None:
    clock = SystemClock()
    before = time.monotonic()
    now = clock.now()
    after = time.monotonic()
    assert before <= now <= after
    clock.close()


def test_system_clock_starts_its_thread_lazily() -> None:
    name = "nexus-timer-lazy"
    clock = SystemClock(name=name)
    try:
        assert clock.now() > 0
        assert _timer_threads(name) == [], "no timer thread before the first call_later"
        done = threading.Event()
        clock.call_later(0, done.set)
        assert done.wait(20)
        threads = _timer_threads(name)
        assert len(threads) == 1
        assert threads[0].daemon
        # a second timer reuses the same thread
        again = threading.Event()
        clock.call_later(0, again.set)
        assert again.wait(20)
        assert _timer_threads(name) == threads
    finally:
        clock.close()
    assert _timer_threads(name) == []


def test_system_clock_close_without_any_timer_starts_no_thread() -> None:
    name = "nexus-timer-never"
    clock = SystemClock(name=name)
    clock.close()
    clock.close()
    assert _timer_threads(name) == []


def test_system_clock_call_later_fires_on_its_thread_after_the_delay(sysclock: SystemClock) -> None:
    delay = 0.05
    seen: list[tuple[str, float, tuple[Any, ...]]] = []
    done = threading.Event()

    def fire(*args: Any) -> None:
        seen.append((threading.current_thread().name, time.monotonic(), args))
        done.set()

    start = time.monotonic()
    sysclock.call_later(delay, fire, "a", 2)
    assert done.wait(20), "timer never fired"
    [(thread_name, fired_at, args)] = seen
    assert thread_name == sysclock._name
    assert thread_name != threading.current_thread().name
    assert args == ("a", 2)
    assert fired_at - start >= delay - 1e-6, "a timer must never fire early"


def test_system_clock_fires_in_deadline_order(sysclock: SystemClock, still_time: _StoppableTime) -> None:
    fired: list[float] = []
    done = threading.Event()

    def fire(delay: float) -> None:
        fired.append(delay)
        if len(fired) == 3:
            done.set()

    still_time.stopped_at = time.monotonic()  # the three deadlines are 20 ms apart, whatever the scheduling
    for delay in (0.06, 0.02, 0.04):
        sysclock.call_later(delay, fire, delay)
    still_time.stopped_at = None
    assert done.wait(20)
    assert fired == [0.02, 0.04, 0.06]


def test_system_clock_an_earlier_timer_scheduled_later_is_not_held_up(sysclock: SystemClock) -> None:
    far_fired = threading.Event()
    near_fired = threading.Event()
    sysclock.call_later(30.0, far_fired.set)
    # The timer thread waits on the clock's condition, with the far deadline's timeout
    wait_until(lambda: len(sysclock._cond._waiters) == 1, timeout=20)  # type: ignore[attr-defined]
    sysclock.call_later(0.01, near_fired.set)
    assert near_fired.wait(20), "the timer thread slept past an earlier deadline"
    assert not far_fired.is_set()


def test_system_clock_cancel_prevents_firing(sysclock: SystemClock) -> None:
    fired: list[str] = []
    done = threading.Event()
    release = _hold_the_timer_thread(sysclock)  # so the cancel surely comes before the timer could fire
    try:
        handle = sysclock.call_later(0, fired.append, "cancelled")
        sysclock.call_later(0, lambda: (fired.append("sentinel"), done.set()))
        handle.cancel()
        assert handle.cancelled
    finally:
        release.set()
    assert done.wait(20)
    assert fired == ["sentinel"], "the cancelled timer was due, yet it did not fire"


def test_system_clock_many_cancellations_keep_the_rest_correct(sysclock: SystemClock) -> None:
    fired: list[int] = []
    lock = threading.Lock()
    done = threading.Event()

    def fire(i: int) -> None:
        with lock:
            fired.append(i)
            if len(fired) == 25:
                done.set()

    last = threading.Event()
    release = _hold_the_timer_thread(sysclock)  # every cancel comes before any of them could fire
    try:
        handles = [sysclock.call_later(0.05, fire, i) for i in range(200)]
        for i, handle in enumerate(handles):
            if i % 8 != 0:
                handle.cancel()
        sysclock.call_later(0.05, last.set)  # due with or after every one of them: it fires after them
    finally:
        release.set()
    assert done.wait(20) and last.wait(20)
    assert fired == [i for i in range(200) if i % 8 == 0]


def test_system_clock_a_raising_timer_does_not_kill_the_thread(sysclock: SystemClock, caplog: pytest.LogCaptureFixture) -> None:
    done = threading.Event()

    def bad() -> None:
        raise RuntimeError("timer bug")

    with caplog.at_level(logging.ERROR, logger="nexus.core.clock"):
        sysclock.call_later(0, bad)
        sysclock.call_later(0.02, done.set)
        assert done.wait(20), "a raising timer stopped the timer thread"
    assert any(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in caplog.records)


def test_system_clock_close_stops_the_thread_and_pending_timers_never_fire() -> None:
    name = "nexus-timer-close"
    clock = SystemClock(name=name)
    fired: list[str] = []
    release = _hold_the_timer_thread(clock)
    try:
        clock.call_later(0, fired.append, "pending")  # due at once, but the timer thread is busy until release
        closer = threading.Thread(target=clock.close)  # close() waits for the timer thread, so not on this one
        closer.start()
        wait_until(lambda: clock._closed, timeout=20)  # type: ignore[attr-defined]
    finally:
        release.set()
    closer.join(20)
    assert not closer.is_alive()
    assert _timer_threads(name) == [], "close() must stop the timer thread"
    after = clock.call_later(0, fired.append, "after close")
    assert isinstance(after, TimerHandle) and after.cancelled
    assert _timer_threads(name) == [], "call_later after close must not restart the thread"
    assert fired == [], "a timer fired after close(); with no timer thread left none can fire later"


def test_system_clock_close_from_inside_a_timer_does_not_deadlock() -> None:
    name = "nexus-timer-self-close"
    clock = SystemClock(name=name)
    returned = threading.Event()

    def close_me() -> None:
        clock.close()
        returned.set()

    clock.call_later(0, close_me)
    assert returned.wait(20), "close() from the timer thread hung"
    wait_until(lambda: not _timer_threads(name))
    clock.close()


def test_system_clock_close_from_a_timer_stops_the_rest_of_its_batch() -> None:
    name = "nexus-timer-batch-close"
    clock = SystemClock(name=name)
    fired: list[str] = []
    entered, release = threading.Event(), threading.Event()
    try:

        def blocker() -> None:
            entered.set()
            release.wait(20)

        clock.call_later(0, blocker)
        assert entered.wait(20)
        # Both are due by the time the blocker returns, so the loop pops them together.
        clock.call_later(0, lambda: (fired.append("closer"), clock.close()))
        clock.call_later(0, fired.append, "after close")
        release.set()
        wait_until(lambda: not _timer_threads(name))
    finally:
        release.set()
        clock.close()
    assert fired == ["closer"], "a timer fired after close() returned"
