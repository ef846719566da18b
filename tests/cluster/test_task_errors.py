"""Errors as Ray raises them: what a task or method raised arrives as an instance of both its own type and
TaskError (Ray's RayTaskError, ``as_instanceof_cause``); the cluster's own errors (a dead actor) as themselves."""

from __future__ import annotations

import logging
import pickle
import threading

import pytest

import nexus
from nexus.cluster.failures import as_task_error, unserializable_task_error
from nexus.exceptions import ActorDiedError, NexusError, RayActorError, RayError, RayTaskError, TaskError


class Unusual(Exception):
    def __init__(self, code: int, *, detail: str) -> None:
        super().__init__(code)
        self.code, self.detail = code, detail

    def __reduce__(self) -> tuple:  # (its own way to travel: a keyword argument)
        return (_unusual, (self.code, self.detail))


def _unusual(code: int, detail: str) -> Unusual:
    return Unusual(code, detail=detail)


class Final(Exception):
    """A "final" exception class: it refuses to be subclassed."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        raise TypeError("Final cannot be subclassed")


class TwoParts(Exception):
    def __init__(self, one: str, two: str) -> None:
        self.one, self.two = one, two

    def __reduce__(self) -> tuple:
        return (TwoParts, (self.one, self.two))


class HoldsALock(Exception):
    def __init__(self) -> None:
        self.lock = threading.Lock()


@nexus.remote
def fails(kind: str) -> None:
    if kind == "plain":
        raise Exception("plain", 3)
    if kind == "final":
        raise Final("final from the task")
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

    def plain(self) -> None:
        raise Exception("plain in a method")


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


def test_a_plain_exception_arrives_as_a_task_error_with_its_arguments(cluster: str) -> None:
    with pytest.raises(RayTaskError) as caught:
        nexus.get(fails.remote("plain"))
    error = caught.value
    assert isinstance(error, RayError) and error.args == ("plain", 3) and type(error.cause) is Exception
    assert "in fails\nException: ('plain', 3)" in str(error.__cause__)
    with pytest.raises(RayError) as method:
        nexus.get([Failing.remote().plain.remote()])
    assert issubclass(method.type, RayTaskError) and str(method.value) == "plain in a method"
    again = pickle.loads(pickle.dumps(method.value))
    assert isinstance(again, TaskError) and again.args == ("plain in a method",) and str(again.cause) == "plain in a method"
    nexus_own = as_task_error(NexusError("a NexusError raised by a task's own code"))
    assert type(nexus_own) is TaskError and isinstance(nexus_own.cause, NexusError)


def test_a_final_exception_arrives_as_a_task_error_only_with_a_warning(cluster: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="nexus.cluster.failures"):
        with pytest.raises(RayTaskError) as caught:
            nexus.get(fails.remote("final"))
    assert not isinstance(caught.value, Final) and isinstance(caught.value.cause, Final)
    assert str(caught.value.cause) == "final from the task" and str(caught.value) == "Final: final from the task"
    assert "can't be subclassed! This exception is raised as RayTaskError only" in caplog.text
    assert "test_task_errors.Final" in caplog.text
    again = pickle.loads(pickle.dumps(caught.value))
    assert isinstance(again, TaskError) and isinstance(again.cause, Final)


def test_a_task_error_takes_rays_keywords_and_pickles_with_its_dual_instance() -> None:
    error = RayTaskError(function_name="f", traceback_str="the traceback", cause=TwoParts("one", "two"))
    assert (error.function_name, error.traceback_str, error.pid) == ("f", "the traceback", None)
    assert str(error) == "f raised TwoParts: ('one', 'two')\nthe traceback"
    again = pickle.loads(pickle.dumps(error))
    assert again.function_name == "f" and isinstance(again.cause, TwoParts) and again.cause.two == "two"
    dual = error.make_dual_exception_instance()
    assert isinstance(dual, TwoParts) and isinstance(dual, RayTaskError)
    unpickled = pickle.loads(pickle.dumps(dual))
    assert isinstance(unpickled, TwoParts) and isinstance(unpickled, RayTaskError) and (unpickled.one, unpickled.two) == ("one", "two")
    assert error.as_instanceof_cause().__class__ is dual.__class__
    final = RayTaskError(cause=Final("x"))
    assert final.make_dual_exception_instance() is final, "a type that cannot be subclassed: the error itself"
    assert TaskError("just a message").make_dual_exception_instance().args == ("just a message",)


def test_a_cause_that_does_not_pickle_becomes_an_error_saying_so() -> None:
    error = RayTaskError(function_name="f", cause=HoldsALock())
    assert isinstance(error.cause, RayError) and not isinstance(error.cause, HoldsALock)
    assert "HoldsALock" in str(error.cause) and "isn't serializable: cannot pickle" in str(error.cause)
    assert isinstance(pickle.loads(pickle.dumps(error)).cause, NexusError)
    arrived = unserializable_task_error("HoldsALock", "", "worker-1", "cannot pickle '_thread.lock' object")
    assert isinstance(arrived, RayTaskError) and isinstance(arrived.cause, RayError)
    assert "(HoldsALock: ) isn't serializable: cannot pickle '_thread.lock' object" in str(arrived.cause)
    assert "raised in worker-1; the exception itself does not pickle" in str(arrived)
    assert isinstance(pickle.loads(pickle.dumps(arrived)).cause, NexusError)
