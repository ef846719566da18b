"""Errors as Ray raises them: what a task or method raised arrives as an instance of both its own type and
TaskError (Ray's RayTaskError, ``as_instanceof_cause``); the cluster's own errors (a dead actor) as themselves."""

from __future__ import annotations

import pickle

import pytest

import nexus
from nexus.exceptions import ActorDiedError, RayActorError, RayError, RayTaskError, TaskError


class Unusual(Exception):
    def __init__(self, code: int, *, detail: str) -> None:
        super().__init__(code)
        self.code, self.detail = code, detail

    def __reduce__(self) -> tuple:  # (its own way to travel: a keyword argument)
        return (_unusual, (self.code, self.detail))


def _unusual(code: int, detail: str) -> Unusual:
    return Unusual(code, detail=detail)


@nexus.remote
def fails(kind: str) -> None:
    if kind == "value":
        raise ValueError("no such value: 7")
    if kind == "unusual":
        raise Unusual(42, detail="kept")
    raise KeyError(kind)


@nexus.remote
def passes_it_on() -> None:
    nexus.get(fails.remote("value"))


@nexus.remote
class Failing:
    def method(self) -> None:
        raise LookupError("in a method")


def test_a_tasks_error_is_its_own_type_and_a_task_error(cluster: str) -> None:
    with pytest.raises(ValueError, match="no such value: 7") as caught:
        nexus.get(fails.remote("value"))
    error = caught.value
    assert isinstance(error, RayTaskError) and isinstance(error, TaskError) and isinstance(error, RayError)
    assert type(error).__name__ == "ValueError" and type(error.cause) is ValueError and str(error.cause) == str(error)
    assert "in fails\nValueError: no such value: 7" in str(error.__cause__), "the remote traceback is its cause"
    with pytest.raises(RayTaskError):
        nexus.get(fails.remote("key"))
    with pytest.raises(Unusual) as unusual:
        nexus.get(fails.remote("unusual"))
    assert (unusual.value.code, unusual.value.detail) == (42, "kept") and isinstance(unusual.value, TaskError)
    again = pickle.loads(pickle.dumps(unusual.value))
    assert isinstance(again, Unusual) and isinstance(again, TaskError) and again.detail == "kept"


def test_an_error_passed_on_through_a_task_and_a_methods_error_are_task_errors(cluster: str) -> None:
    with pytest.raises(ValueError, match="no such value") as caught:
        nexus.get(passes_it_on.remote())
    assert isinstance(caught.value, RayTaskError)
    with pytest.raises(LookupError, match="in a method") as method:
        nexus.get(Failing.remote().method.remote())
    assert isinstance(method.value, TaskError)


def test_the_clusters_own_errors_are_not_task_errors(cluster: str) -> None:
    actor = Failing.remote()
    nexus.kill(actor)
    with pytest.raises(RayActorError) as caught:
        nexus.get(actor.method.remote(), timeout=30)
    assert isinstance(caught.value, ActorDiedError) and not isinstance(caught.value, TaskError)
