"""nexus.cancel as Ray defines it: a task blocked in get is interrupted at once, the tasks it submitted are
cancelled with it (recursive, the default), an actor's call that has not begun is dropped, force is refused
for an actor's call."""

from __future__ import annotations

import time

import pytest

import nexus
from nexus.exceptions import TaskCancelledError
from tests.conftest import wait_until


@nexus.remote
def sleeps(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


@nexus.remote
def waits_on_a_child(seconds: float) -> str:
    return nexus.get(sleeps.remote(seconds))


@nexus.remote
class Slow:
    def step(self, x: int) -> int:
        time.sleep(0.5)
        return x


def _state(name: str) -> list[str]:
    return [t.state for t in nexus.state.list_tasks() if t.name.endswith(name)]


def test_a_task_blocked_in_get_is_cancelled_at_once_and_its_child_with_it(cluster: str) -> None:
    parent = waits_on_a_child.remote(30)
    wait_until(lambda: "running" in _state("sleeps"), timeout=30)
    started = time.monotonic()
    nexus.cancel(parent)
    with pytest.raises(TaskCancelledError):
        nexus.get(parent, timeout=30)
    assert time.monotonic() - started < 10, "not after its child's 30 s"
    wait_until(lambda: "running" not in _state("sleeps") and _state("sleeps"), timeout=30)


def test_without_recursive_the_child_runs_on(cluster: str) -> None:
    parent = waits_on_a_child.remote(2)
    wait_until(lambda: "running" in _state("sleeps"), timeout=30)
    nexus.cancel(parent, recursive=False)
    with pytest.raises(TaskCancelledError):
        nexus.get(parent, timeout=30)
    assert "running" in _state("sleeps") or "finished" in _state("sleeps"), "the child was left alone"


def test_an_actor_call_that_has_not_begun_is_dropped_and_force_is_refused(cluster: str) -> None:
    actor = Slow.remote()
    first, second, third = actor.step.remote(1), actor.step.remote(2), actor.step.remote(3)
    nexus.cancel(second)
    with pytest.raises(TaskCancelledError, match="before it ran"):
        nexus.get(second, timeout=30)
    assert nexus.get([first, third], timeout=30) == [1, 3]
    with pytest.raises(ValueError, match="force=True kills a task's worker"):
        nexus.cancel(actor.step.remote(4), force=True)


@nexus.remote(concurrency_groups={"slow": 1})
class Grouped:
    @nexus.method(concurrency_group="slow")
    def step(self, x: int) -> int:
        time.sleep(0.5)
        return x


def test_a_call_waiting_for_its_groups_thread_is_cancelled_before_it_runs(cluster: str) -> None:
    actor = Grouped.remote()
    first, second = actor.step.remote(1), actor.step.remote(2)
    nexus.cancel(second)
    with pytest.raises(TaskCancelledError, match="before it ran"):
        nexus.get(second, timeout=30)
    assert nexus.get(first, timeout=30) == 1


@nexus.remote
class Recorder:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def step(self, x: int, pause: float = 0.0) -> int:
        time.sleep(pause)
        self.seen.append(x)
        return x

    def ran(self) -> list[int]:
        return self.seen


@nexus.remote
def calls_an_actor(actor: object) -> list[int]:
    return nexus.get([actor.step.remote(i) for i in (1, 2, 3)])  # type: ignore[attr-defined]


def test_the_actor_calls_a_cancelled_task_made_are_cancelled_with_it(cluster: str) -> None:
    actor = Recorder.remote()
    busy = actor.step.remote(0, 2.0)  # (the calls the task makes wait behind this one)
    task = calls_an_actor.remote(actor)
    wait_until(lambda: "running" in _state("calls_an_actor"), timeout=30)
    time.sleep(0.3)  # (its calls are made)
    nexus.cancel(task)
    with pytest.raises(TaskCancelledError):
        nexus.get(task, timeout=30)
    assert nexus.get(busy, timeout=30) == 0
    assert nexus.get(actor.ran.remote(), timeout=30) == [0], "the task's calls never ran"


@nexus.remote
class Sleeper:
    async def sleep(self, seconds: float) -> str:
        import asyncio

        self.begun = getattr(self, "begun", 0) + 1
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.cancelled = True  # (it sees the cancellation, as a coroutine does in Ray)
            raise
        return "slept"

    async def was_cancelled(self) -> bool:
        return getattr(self, "cancelled", False)

    async def calls_begun(self) -> int:
        return getattr(self, "begun", 0)


def test_a_running_async_call_is_cancelled_in_its_event_loop(cluster: str) -> None:
    sleeper = Sleeper.remote()
    long = sleeper.sleep.remote(300)
    short = sleeper.sleep.remote(0.5)
    wait_until(lambda: nexus.get(sleeper.calls_begun.remote(), timeout=30) == 2, timeout=60)  # (both run together)
    start = time.monotonic()
    nexus.cancel(long)
    with pytest.raises(TaskCancelledError, match="while it ran"):
        nexus.get(long, timeout=30)
    assert time.monotonic() - start < 10
    assert nexus.get(short, timeout=30) == "slept", "the other call of the loop went on"
    assert nexus.get(sleeper.was_cancelled.remote(), timeout=30)
    assert nexus.get(sleeper.sleep.remote(0), timeout=30) == "slept"
