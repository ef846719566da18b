"""An actor ends when its last handle goes, as Ray's: after the calls it was given, with its ``__ray_shutdown__``;
unless it is named or detached. Handles count wherever they are: in a task's arguments, a value put, another
actor, a task that made the actor and returned it."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

import nexus
from tests.conftest import wait_until


@nexus.remote
class Tracked:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def pid(self) -> int:
        return os.getpid()

    def slow(self, seconds: float) -> str:
        time.sleep(seconds)
        return "done"

    def __ray_shutdown__(self) -> None:
        Path(self.marker).write_text("shut down")


@nexus.remote(max_concurrency=3)
class Threaded:
    def slow(self, seconds: float) -> str:
        time.sleep(seconds)
        return "threaded done"


@nexus.remote
class Awaiting:
    async def slow(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "async done"


@nexus.remote
class Keeper:
    def __init__(self) -> None:
        self.kept: list = []

    def keep(self, handle) -> None:
        self.kept.append(handle)

    def drop(self) -> None:
        self.kept.clear()


@nexus.remote
def pid_of(handle) -> int:
    return nexus.get(handle.pid.remote())


@nexus.remote
def make(marker: str, keep: bool):
    handle = Tracked.remote(marker)
    pid = nexus.get(handle.pid.remote())
    return (handle, pid) if keep else pid


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") >= 0
    except (FileNotFoundError, ProcessLookupError):  # (gone, or going while its status was read)
        return True


def test_the_last_handle_gone_ends_the_actor_and_its_shutdown_runs(cluster: str, tmp_path: Path) -> None:
    marker = tmp_path / "shutdown"
    actor = Tracked.remote(str(marker))
    pid = nexus.get(actor.pid.remote())
    kept = actor
    del actor
    time.sleep(0.3)
    assert not _gone(pid), "a handle is still held"
    del kept
    wait_until(lambda: _gone(pid), timeout=30)  # the actor outlived its last handle
    assert marker.read_text() == "shut down"


def test_calls_made_before_the_handle_went_are_answered(cluster: str, tmp_path: Path) -> None:
    refs = [
        Tracked.remote(str(tmp_path / "m")).slow.remote(0.5),
        Threaded.remote().slow.remote(0.5),
        Awaiting.remote().slow.remote(0.5),
    ]
    assert nexus.get(refs, timeout=60) == ["done", "threaded done", "async done"]


def test_named_and_detached_actors_stay(cluster: str, tmp_path: Path) -> None:
    named = Tracked.options(name="lifetime-named").remote(str(tmp_path / "named"))
    detached = Tracked.options(lifetime="detached").remote(str(tmp_path / "detached"))
    pids = nexus.get([named.pid.remote(), detached.pid.remote()])
    del named, detached
    time.sleep(1.0)
    assert not any(_gone(pid) for pid in pids)
    again = nexus.get_actor("lifetime-named")
    assert nexus.get(again.pid.remote()) == pids[0]
    nexus.kill(again)
    with pytest.raises(ValueError, match="lifetime"):
        Tracked.options(lifetime="forever")


def test_handles_held_elsewhere_keep_it(cluster: str, tmp_path: Path) -> None:
    actor = Tracked.remote(str(tmp_path / "m"))
    pid = nexus.get(actor.pid.remote())
    through_a_task = pid_of.remote(actor)
    boxed = nexus.put({"handle": actor})
    keeper = Keeper.remote()
    nexus.get(keeper.keep.remote(actor))
    del actor
    assert nexus.get(through_a_task) == pid
    del boxed
    time.sleep(0.5)
    assert not _gone(pid), "the keeper's handle went unnoticed"
    nexus.get(keeper.drop.remote())
    wait_until(lambda: _gone(pid), timeout=30)  # the actor outlived the handle another actor held


def test_an_actor_made_in_a_task_lives_on_with_the_handle_it_returned(cluster: str, tmp_path: Path) -> None:
    handle, pid = nexus.get(make.remote(str(tmp_path / "kept"), True))
    time.sleep(0.5)
    assert nexus.get(handle.pid.remote()) == pid
    del handle
    wait_until(lambda: _gone(pid), timeout=30)
    dropped = nexus.get(make.remote(str(tmp_path / "dropped"), False))
    wait_until(lambda: _gone(dropped), timeout=30)  # an actor whose maker let its handle go lived on


@nexus.remote
class Owner:
    def make(self, lifetime: str | None) -> object:
        self.child = Tracked.options(lifetime=lifetime).remote("/dev/null")
        nexus.get(self.child.pid.remote())
        return self.child

    def pid(self) -> int:
        return os.getpid()


def test_an_actor_ends_with_the_actor_that_made_it_unless_detached(cluster: str) -> None:
    owner = Owner.remote()
    child, detached = nexus.get([owner.make.remote(None), owner.make.remote("detached")])
    pids = nexus.get([child.pid.remote(), detached.pid.remote()])
    os.kill(nexus.get(owner.pid.remote()), 9)
    wait_until(lambda: _gone(pids[0]), timeout=30)  # the child lived on after its owner died, though a handle is held here
    with pytest.raises(nexus.exceptions.ActorDiedError, match="ended with its owner"):
        nexus.get(child.pid.remote(), timeout=30)
    assert nexus.get(detached.pid.remote(), timeout=30) == pids[1]
    nexus.kill(detached)
