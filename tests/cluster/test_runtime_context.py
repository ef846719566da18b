"""nexus.get_runtime_context(), as Ray's: the job, node, task and actor ids, the resources a task was given,
whether its actor was restarted, in the driver, a task and an actor's method."""

from __future__ import annotations

import os
import signal

import pytest

import nexus
from nexus.exceptions import ActorDiedError
from tests.conftest import wait_until


@nexus.remote(num_cpus=1, resources={"slot": 1})
def where() -> dict:
    context = nexus.get_runtime_context()
    return {
        "job": context.get_job_id(),
        "node": context.get_node_id(),
        "task": context.get_task_id(),
        "actor": context.get_actor_id(),
        "resources": context.get_assigned_resources(),
    }


@nexus.remote(max_restarts=1)
class Placed:
    def facts(self) -> dict:
        context = nexus.get_runtime_context()
        return {
            "actor": context.get_actor_id(),
            "name": context.get_actor_name(),
            "task": context.get_task_id(),
            "again": context.was_current_actor_reconstructed,
            "same": context.current_actor == nexus.get_actor("placed"),
        }

    def pid(self) -> int:
        return os.getpid()


@pytest.fixture(scope="module")
def slotted() -> object:
    nexus.init(num_cpus=2, resources={"slot": 2})
    yield
    nexus.shutdown()


def test_the_driver_a_task_and_an_actor_each_say_where_they_run(slotted: object) -> None:
    here = nexus.get_runtime_context()
    node = nexus.nodes()[0]["NodeID"]
    assert here.get_node_id() == node and here.get_task_id() is None and here.get_actor_id() is None
    assert here.namespace == "default" and here.get_assigned_resources() == {}
    with pytest.raises(RuntimeError, match="runs in none"):
        here.current_actor
    task = nexus.get(where.remote(), timeout=30)
    assert task["job"] == here.get_job_id() and task["node"] == node and task["actor"] is None
    assert task["task"] and task["resources"] == {"CPU": 1.0, "slot": 1.0}
    actor = Placed.options(name="placed").remote()
    facts = nexus.get(actor.facts.remote(), timeout=30)
    assert facts["actor"] == f"{actor._actor_id:016x}" and facts["name"] == "placed" and facts["task"]
    assert facts["again"] is False and facts["same"] is True
    os.kill(nexus.get(actor.pid.remote(), timeout=30), signal.SIGKILL)

    def restarted() -> dict | None:
        try:
            return nexus.get(actor.facts.remote(), timeout=60)
        except ActorDiedError:  # (a call sent while it died: it restarts, the call is not retried)
            return None

    assert wait_until(restarted, timeout=60)["again"] is True, "restarted once"
