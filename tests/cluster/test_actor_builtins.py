"""What every actor answers, as Ray's do (``__ray_ready__``, ``__ray_terminate__``), and an actor ending itself
(``nexus.actor.exit_actor``): its ``__ray_shutdown__`` runs, earlier answers go out, later calls fail, and
it is not restarted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import nexus
from nexus.actor import exit_actor
from nexus.exceptions import ActorDiedError


@nexus.remote(max_restarts=3)
class Closing:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def pid(self) -> int:
        return os.getpid()

    def leave(self) -> None:
        exit_actor()

    async def leave_async(self) -> None:
        exit_actor()

    def __ray_shutdown__(self) -> None:
        Path(self.marker).write_text("shut down")


@nexus.remote
def not_an_actor() -> str:
    try:
        exit_actor()
    except TypeError as exc:
        return str(exc)
    return "exited?"


def test_ready_answers_true_and_terminate_runs_shutdown_after_the_calls_before_it(cluster: str, tmp_path: Path) -> None:
    marker = tmp_path / "terminated"
    actor = Closing.remote(str(marker))
    assert nexus.get(actor.__ray_ready__.remote(), timeout=30) is True
    before = actor.pid.remote()
    actor.__ray_terminate__.remote()
    assert nexus.get(before, timeout=30) > 0, "a call before the terminate is answered"
    with pytest.raises(ActorDiedError, match="exited"):
        nexus.get(actor.pid.remote(), timeout=30)
    assert marker.read_text() == "shut down"


@pytest.mark.parametrize("how", ["leave", "leave_async"])
def test_exit_actor_ends_it_for_good_and_its_calls_fail(cluster: str, tmp_path: Path, how: str) -> None:
    marker = tmp_path / how
    actor = Closing.remote(str(marker))
    nexus.get(actor.pid.remote(), timeout=30)
    with pytest.raises(ActorDiedError, match=r"exited \(exit_actor\)"):
        nexus.get(getattr(actor, how).remote(), timeout=30)
    with pytest.raises(ActorDiedError):
        nexus.get(actor.pid.remote(), timeout=30)  # (max_restarts=3: not restarted all the same)
    assert marker.read_text() == "shut down"


def test_exit_actor_outside_an_actor_says_where_it_belongs(cluster: str) -> None:
    assert "call it in an actor's method" in nexus.get(not_an_actor.remote(), timeout=30)
    with pytest.raises(TypeError, match="not in a task or a driver"):
        exit_actor()
