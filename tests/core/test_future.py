"""Future: first-wins completion, blocking and awaiting, callbacks, helpers."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest

from nexus.core.errors import FutureCancelledError, InvalidStateError, NexusError, WaitTimeoutError
from nexus.core.future import Future, FutureState


class Boom(Exception):
    pass


def _start(target: Any, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, name="test-future-helper", daemon=True)
    thread.start()
    return thread


def _join_all(threads: list[threading.Thread], within: float) -> None:
    """Join every thread against one shared deadline; fail if any is still running after it."""
    deadline = time.monotonic() + within
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"a waiter was not released within {within} s"


# ---- state and first-wins completion ---------------------------------------------


def test_a_new_future_is_pending() -> None:
    fut: Future[int] = Future()
    assert fut.state is FutureState.PENDING
    assert not fut.done()
    assert not fut.cancelled()


def test_try_set_result_completes_once_and_the_first_value_wins() -> None:
    fut: Future[str] = Future()
    assert fut.try_set_result("first") is True
    assert fut.try_set_result("second") is False
    assert fut.try_set_exception(Boom()) is False
    assert fut.cancel() is False
    assert fut.state is FutureState.SUCCEEDED
    assert fut.done()
    assert fut.result() == "first"
    assert fut.exception() is None


def test_try_set_exception_completes_once_and_the_first_error_wins() -> None:
    fut: Future[int] = Future()
    first = Boom("first")
    assert fut.try_set_exception(first) is True
    assert fut.try_set_exception(Boom("second")) is False
    assert fut.try_set_result(1) is False
    assert fut.state is FutureState.FAILED
    with pytest.raises(Boom) as info:
        fut.result()
    assert info.value is first
    assert fut.exception() is first


def test_a_result_of_none_is_a_success() -> None:
    fut: Future[None] = Future()
    assert fut.try_set_result(None) is True
    assert fut.done()
    assert fut.state is FutureState.SUCCEEDED
    assert fut.result() is None
    assert fut.try_set_result(None) is False


def test_an_exception_can_be_the_result_value_without_raising() -> None:
    error = Boom("a value, not a failure")
    fut: Future[Boom] = Future()
    fut.set_result(error)
    assert fut.result() is error
    assert fut.exception() is None


@pytest.mark.parametrize("first", ["result", "exception", "cancel"])
def test_set_result_and_set_exception_raise_invalid_state_when_done(first: str) -> None:
    fut: Future[int] = Future()
    if first == "result":
        fut.set_result(1)
    elif first == "exception":
        fut.set_exception(Boom())
    else:
        assert fut.cancel()
    state = fut.state
    with pytest.raises(InvalidStateError, match="only once") as info:
        fut.set_result(2)
    assert isinstance(info.value, NexusError)
    assert isinstance(info.value, RuntimeError)
    with pytest.raises(InvalidStateError):
        fut.set_exception(Boom())
    assert fut.state is state, "a rejected completion must not change the future"


def test_set_result_and_set_exception_complete_a_pending_future() -> None:
    ok: Future[int] = Future()
    ok.set_result(7)
    assert ok.result() == 7
    bad: Future[int] = Future()
    bad.set_exception(Boom("x"))
    with pytest.raises(Boom, match="x"):
        bad.result()


def test_only_one_of_many_racing_completers_wins() -> None:
    for _ in range(20):
        fut: Future[int] = Future()
        start = threading.Barrier(8)
        wins: list[int] = []

        def complete(i: int, fut: Future[int] = fut, start: threading.Barrier = start, wins: list[int] = wins) -> None:
            start.wait()
            if fut.try_set_result(i):
                wins.append(i)

        threads = [_start(complete, i) for i in range(8)]
        for t in threads:
            t.join(5)
        assert len(wins) == 1
        assert fut.result(0) == wins[0]


# ---- cancel ------------------------------------------------------------------------


def test_cancel_a_pending_future() -> None:
    fut: Future[int] = Future()
    assert fut.cancel() is True
    assert fut.cancelled()
    assert fut.done()
    assert fut.state is FutureState.CANCELLED
    assert fut.cancel() is False
    assert fut.try_set_result(1) is False
    with pytest.raises(FutureCancelledError):
        fut.result()
    with pytest.raises(FutureCancelledError):
        fut.exception()


def test_cancel_a_completed_future_does_nothing() -> None:
    fut = Future.succeeded(3)
    assert fut.cancel() is False
    assert not fut.cancelled()
    assert fut.result() == 3


def test_cancel_wakes_a_blocked_waiter_with_future_cancelled_error() -> None:
    fut: Future[int] = Future()
    outcome: list[BaseException] = []
    blocked = threading.Event()

    def waiter() -> None:
        blocked.set()
        try:
            fut.result(timeout=10)
        except BaseException as e:
            outcome.append(e)

    t = _start(waiter)
    blocked.wait(5)
    fut.cancel()
    t.join(5)
    assert not t.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], FutureCancelledError)


# ---- result, wait and exception with timeouts -----------------------------------------


def test_result_times_out_with_wait_timeout_error_which_is_a_timeout_error() -> None:
    fut: Future[int] = Future()
    with pytest.raises(WaitTimeoutError) as info:
        fut.result(timeout=0.01)
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, NexusError)
    with pytest.raises(TimeoutError):
        fut.result(timeout=0)
    # The future is unaffected by the timeout and may still complete.
    assert not fut.done()
    fut.set_result(5)
    assert fut.result(timeout=0) == 5


def test_result_with_a_negative_timeout_does_not_block() -> None:
    fut: Future[int] = Future()
    start = time.monotonic()
    with pytest.raises(WaitTimeoutError):
        fut.result(timeout=-1)
    assert time.monotonic() - start < 2.0


def test_exception_times_out_and_returns_the_error_or_none() -> None:
    pending: Future[int] = Future()
    with pytest.raises(WaitTimeoutError):
        pending.exception(timeout=0.01)
    error = Boom()
    assert Future.failed(error).exception() is error
    assert Future.succeeded(1).exception() is None


def test_wait_reports_whether_the_future_is_done() -> None:
    fut: Future[int] = Future()
    assert fut.wait(0) is False
    assert fut.wait(0.01) is False
    fut.set_result(1)
    assert fut.wait(0) is True
    assert fut.wait() is True


def test_result_blocks_until_another_thread_completes_it() -> None:
    fut: Future[str] = Future()
    blocked = threading.Event()

    def complete_later() -> None:
        blocked.wait(5)
        time.sleep(0.02)
        fut.set_result("late")

    t = _start(complete_later)
    blocked.set()
    assert fut.result(timeout=10) == "late"
    t.join(5)


def test_exception_blocks_until_another_thread_fails_it() -> None:
    fut: Future[int] = Future()
    error = Boom()
    t = _start(lambda: (time.sleep(0.02), fut.set_exception(error)))
    assert fut.exception(timeout=10) is error
    t.join(5)


def test_many_threads_waiting_on_one_future_are_all_released() -> None:
    fut: Future[int] = Future()
    n = 16
    ready = threading.Barrier(n + 1)
    results: list[Any] = []
    lock = threading.Lock()

    def waiter() -> None:
        ready.wait(5)
        value = fut.result(timeout=60)  # far beyond the hang guard below
        with lock:
            results.append(value)

    threads = [_start(waiter) for _ in range(n)]
    ready.wait(5)
    time.sleep(0.01)  # let most of them block (not required for correctness)
    fut.set_result(42)
    _join_all(threads, within=5)
    assert results == [42] * n
    # and the future stays waitable afterwards
    assert fut.wait(0) is True
    assert fut.result(0) == 42


def test_many_threads_waiting_on_one_failed_future_all_see_the_error() -> None:
    fut: Future[int] = Future()
    n = 8
    ready = threading.Barrier(n + 1)
    errors: list[BaseException] = []
    lock = threading.Lock()

    def waiter() -> None:
        ready.wait(5)
        try:
            fut.result(timeout=60)  # far beyond the hang guard below
        except Boom as e:
            with lock:
                errors.append(e)

    threads = [_start(waiter) for _ in range(n)]
    ready.wait(5)
    error = Boom()
    fut.set_exception(error)
    _join_all(threads, within=5)
    assert len(errors) == n
    assert all(e is error for e in errors)


# ---- callbacks -------------------------------------------------------------------


def test_callbacks_added_before_completion_run_once_in_order_with_the_future() -> None:
    fut: Future[int] = Future()
    calls: list[tuple[str, Any]] = []
    fut.add_done_callback(lambda f: calls.append(("a", f)))
    fut.add_done_callback(lambda f: calls.append(("b", f.result())))
    assert calls == []
    fut.set_result(9)
    assert calls == [("a", fut), ("b", 9)]
    fut.try_set_result(10)
    fut.cancel()
    assert len(calls) == 2, "callbacks must run only once"


def test_callbacks_run_on_the_completing_thread() -> None:
    fut: Future[int] = Future()
    seen: list[threading.Thread] = []
    fut.add_done_callback(lambda _f: seen.append(threading.current_thread()))
    t = _start(fut.set_result, 1)
    t.join(5)
    assert seen == [t]


def test_a_callback_added_after_completion_runs_at_once_on_the_calling_thread() -> None:
    fut = Future.failed(Boom())
    seen: list[tuple[Future[Any], threading.Thread]] = []
    fut.add_done_callback(lambda f: seen.append((f, threading.current_thread())))
    assert seen == [(fut, threading.current_thread())]


def test_callbacks_run_on_cancel_too() -> None:
    fut: Future[int] = Future()
    states: list[FutureState] = []
    fut.add_done_callback(lambda f: states.append(f.state))
    fut.cancel()
    assert states == [FutureState.CANCELLED]


def test_a_callback_sees_the_future_already_done() -> None:
    fut: Future[int] = Future()
    seen: list[tuple[bool, int]] = []
    fut.add_done_callback(lambda f: seen.append((f.done(), f.result(timeout=0))))
    fut.set_result(3)
    assert seen == [(True, 3)]


def test_a_raising_callback_is_logged_and_does_not_break_the_completer(caplog: pytest.LogCaptureFixture) -> None:
    fut: Future[int] = Future()
    after: list[int] = []

    def bad(_f: Future[int]) -> None:
        raise Boom("callback bug")

    fut.add_done_callback(bad)
    fut.add_done_callback(lambda f: after.append(f.result()))
    with caplog.at_level(logging.ERROR, logger="nexus.core"):
        assert fut.try_set_result(1) is True  # does not raise
    assert after == [1], "a later callback must still run"
    assert fut.result() == 1
    records = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], Boom)]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR


def test_a_raising_callback_added_after_completion_does_not_raise_to_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    fut = Future.succeeded(1)

    def bad(_f: Future[int]) -> None:
        raise Boom("late callback bug")

    with caplog.at_level(logging.ERROR, logger="nexus.core"):
        fut.add_done_callback(bad)
    assert any(r.exc_info and isinstance(r.exc_info[1], Boom) for r in caplog.records)


def test_a_raising_callback_does_not_stop_waiters_from_being_released(caplog: pytest.LogCaptureFixture) -> None:
    fut: Future[int] = Future()
    fut.add_done_callback(lambda _f: 1 / 0)
    got: list[int] = []
    blocked = threading.Event()

    def waiter() -> None:
        blocked.set()
        got.append(fut.result(timeout=10))

    t = _start(waiter)
    blocked.wait(5)
    with caplog.at_level(logging.CRITICAL, logger="nexus.core"):
        fut.set_result(2)
    t.join(5)
    assert got == [2]


def test_a_callback_may_add_another_callback() -> None:
    fut: Future[int] = Future()
    calls: list[str] = []

    def outer(f: Future[int]) -> None:
        calls.append("outer")
        f.add_done_callback(lambda _f: calls.append("inner"))

    fut.add_done_callback(outer)
    fut.set_result(1)
    assert calls == ["outer", "inner"]


def test_callbacks_added_concurrently_with_completion_each_run_exactly_once() -> None:
    for _ in range(20):
        fut: Future[int] = Future()
        counts = [0] * 200
        start = threading.Barrier(2)

        def add(fut: Future[int] = fut, counts: list[int] = counts, start: threading.Barrier = start) -> None:
            start.wait()
            for i in range(len(counts)):

                def cb(_f: Future[int], i: int = i) -> None:
                    counts[i] += 1

                fut.add_done_callback(cb)

        t = _start(add)
        start.wait()
        fut.set_result(0)
        t.join(5)
        assert counts == [1] * 200


# ---- await -----------------------------------------------------------------------


def test_await_a_future_completed_from_another_thread() -> None:
    fut: Future[str] = Future()

    async def main() -> str:
        t = _start(lambda: (time.sleep(0.02), fut.set_result("from a thread")))
        try:
            return await asyncio.wait_for(_await(fut), timeout=10)
        finally:
            t.join(5)

    assert asyncio.run(main()) == "from a thread"


def test_await_a_future_failed_from_another_thread_raises_the_error() -> None:
    fut: Future[int] = Future()
    error = Boom("async")

    async def main() -> None:
        t = _start(lambda: (time.sleep(0.02), fut.set_exception(error)))
        try:
            await asyncio.wait_for(_await(fut), timeout=10)
        finally:
            t.join(5)

    with pytest.raises(Boom) as info:
        asyncio.run(main())
    assert info.value is error


def test_await_a_cancelled_future_raises_future_cancelled_error() -> None:
    fut: Future[int] = Future()

    async def main() -> None:
        asyncio.get_running_loop().call_later(0.01, fut.cancel)
        await asyncio.wait_for(_await(fut), timeout=10)

    with pytest.raises(FutureCancelledError):
        asyncio.run(main())


def test_await_an_already_completed_future_returns_at_once() -> None:
    async def main() -> int:
        return await Future.succeeded(11)

    assert asyncio.run(main()) == 11


def test_await_does_not_block_the_event_loop() -> None:
    fut: Future[int] = Future()
    ticks: list[int] = []

    async def ticker() -> None:
        for i in range(3):
            ticks.append(i)
            await asyncio.sleep(0)
        fut.set_result(len(ticks))

    async def main() -> int:
        task = asyncio.ensure_future(ticker())
        value = await asyncio.wait_for(_await(fut), timeout=10)
        await task
        return value

    assert asyncio.run(main()) == 3


def test_many_coroutines_can_await_one_future() -> None:
    fut: Future[int] = Future()

    async def main() -> list[int]:
        gathered = asyncio.gather(*(_await(fut) for _ in range(5)))
        t = _start(lambda: (time.sleep(0.02), fut.set_result(4)))
        try:
            return await asyncio.wait_for(gathered, timeout=10)
        finally:
            t.join(5)

    assert asyncio.run(main()) == [4] * 5


async def _await(fut: Future[Any]) -> Any:
    return await fut


# ---- helpers and repr ------------------------------------------------------------


def test_succeeded_helper() -> None:
    fut = Future.succeeded("v")
    assert isinstance(fut, Future)
    assert fut.done()
    assert fut.state is FutureState.SUCCEEDED
    assert fut.result(timeout=0) == "v"


def test_failed_helper() -> None:
    error = Boom("f")
    fut: Future[int] = Future.failed(error)
    assert fut.done()
    assert fut.state is FutureState.FAILED
    with pytest.raises(Boom) as info:
        fut.result(timeout=0)
    assert info.value is error


def test_helpers_return_distinct_futures() -> None:
    a, b = Future.succeeded(1), Future.succeeded(1)
    assert a is not b


def test_repr_shows_the_state_and_value() -> None:
    assert repr(Future()) == "<Future pending>"
    assert repr(Future.succeeded("x")) == "<Future succeeded 'x'>"
    assert repr(Future.failed(Boom("bad thing"))) == "<Future failed Boom: bad thing>"
    cancelled: Future[int] = Future()
    cancelled.cancel()
    assert repr(cancelled) == "<Future cancelled>"
