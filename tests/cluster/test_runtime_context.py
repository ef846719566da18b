"""nexus.get_runtime_context(), as Ray's: the job, node, task and actor ids, the resources a task was given,
whether its actor was restarted, in the driver, a task and an actor's method and constructor; the dict that
get() gives, the ids' deprecated properties, and the names of the running task and its function."""

from __future__ import annotations

import os
import signal
import warnings

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


@nexus.remote
def described() -> dict:
    context = nexus.get_runtime_context()
    return {
        "got": context.get(),
        "name": context.get_task_name(),
        "function": context.get_task_function_name(),
        "task_hex": context.task_id.hex() if context.task_id is not None else None,
    }


@nexus.remote(max_restarts=2)
class Describer:
    def __init__(self) -> None:
        context = nexus.get_runtime_context()
        self.born = {
            "again": context.was_current_actor_reconstructed,
            "actor": context.get_actor_id(),
            "name": context.get_task_name(),
        }

    def birth(self) -> dict:
        return self.born

    def plain(self) -> tuple:
        context = nexus.get_runtime_context()
        return context.get(), context.get_task_name(), context.get_task_function_name(), context.get_actor_name()

    async def later(self) -> tuple:
        context = nexus.get_runtime_context()
        return context.get_task_name(), context.get_task_function_name()

    def pid(self) -> int:
        return os.getpid()


def test_get_leaves_out_the_task_and_actor_keys_where_there_are_none(slotted: object) -> None:
    here = nexus.get_runtime_context().get()
    assert set(here) == {"job_id", "node_id", "namespace"}
    assert here["node_id"].hex() == nexus.get_runtime_context().get_node_id()
    in_task = nexus.get(described.remote(), timeout=30)
    assert set(in_task["got"]) == {"job_id", "node_id", "namespace", "task_id"}
    assert in_task["got"]["job_id"] == here["job_id"] and in_task["got"]["task_id"].hex() == in_task["task_hex"]
    actor = Describer.remote()
    in_call, _name, _function, actor_name = nexus.get(actor.plain.remote(), timeout=30)
    assert set(in_call) == {"job_id", "node_id", "namespace", "task_id", "actor_id"}
    assert in_call["actor_id"] == f"{actor._actor_id:016x}" and actor_name == "", "an unnamed actor's name is empty"


def test_the_deprecated_id_properties_warn_and_give_what_the_getters_do(slotted: object) -> None:
    context = nexus.get_runtime_context()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert context.node_id.hex() == context.get_node_id() and context.job_id.hex() == context.get_job_id()
        assert context.task_id is None and context.actor_id is None
    told = [str(w.message) for w in caught]
    assert "Use get_node_id() instead" in told and "Use get_job_id() instead" in told
    assert all(issubclass(w.category, DeprecationWarning) for w in caught)
    assert context.get_placement_group_id() is None and context.get_task_name() is None


def test_a_task_and_an_actor_call_are_named_as_ray_names_them(slotted: object) -> None:
    in_task = nexus.get(described.remote(), timeout=30)
    assert in_task["name"] == "described" and in_task["function"] == f"{__name__}.described"
    actor = Describer.remote()
    _got, name, function, _actor_name = nexus.get(actor.plain.remote(), timeout=30)
    assert (name, function) == ("Describer.plain", f"{__name__}.Describer.plain")
    assert nexus.get(actor.later.remote(), timeout=30) == ("Describer.later", f"{__name__}.Describer.later")
    assert nexus.get(actor.birth.remote(), timeout=30)["name"] == "Describer.__init__"


def test_the_constructor_knows_its_actor_and_whether_it_was_restarted(slotted: object) -> None:
    actor = Describer.remote()
    born = nexus.get(actor.birth.remote(), timeout=30)
    assert born["again"] is False and born["actor"] == f"{actor._actor_id:016x}"
    os.kill(nexus.get(actor.pid.remote(), timeout=30), signal.SIGKILL)

    def reborn() -> dict | None:
        try:
            return nexus.get(actor.birth.remote(), timeout=60)
        except ActorDiedError:
            return None

    again = wait_until(reborn, timeout=60)
    assert again["again"] is True and again["actor"] == born["actor"]


@nexus.remote
def _named_task() -> str | None:
    return nexus.get_runtime_context().get_task_name()


def test_a_tasks_name_option_is_its_name(slotted: object) -> None:
    assert nexus.get(_named_task.options(name="custom name").remote(), timeout=30) == "custom name"
    assert nexus.get(_named_task.remote(), timeout=30).endswith("_named_task")
