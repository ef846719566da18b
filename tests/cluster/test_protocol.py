"""The messages' schema (nexus.cluster.protocol.messages) is what the handlers at each end take."""

from __future__ import annotations

import inspect

import pytest

import nexus
from nexus.cluster import api
from nexus.cluster.protocol import messages
from nexus.cluster.worker import WorkerRuntime


def _positional(fn) -> tuple[list[str], dict[str, object], bool]:
    """Names, defaults and whether it takes *args, of what ``fn`` takes after its first parameter (the sender)."""
    params = list(inspect.signature(fn).parameters.values())
    names, defaults, rest = [], {}, False
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            rest = True
        else:
            names.append(p.name)
            if p.default is not p.empty:
                defaults[p.name] = p.default
    return names, defaults, rest


def _check(op: str, kind: type, fn, skip_first: bool) -> None:
    names, defaults, rest = _positional(fn)
    if skip_first:
        names = names[1:]
    fields = list(kind._fields)
    if kind is messages.Control:  # (request, op, *args)
        assert names == fields[:2] and rest, f"{op}: the handler takes {names}, the message has {fields}"
        return
    assert names == fields, f"{op}: the handler takes {names}, the message {kind.__name__} has {fields}"
    assert defaults == kind._field_defaults, f"{op}: defaults differ: {defaults} != {kind._field_defaults}"


def test_the_driver_handles_every_message_a_worker_sends_with_its_fields():
    nexus.init(num_cpus=1)
    try:
        handlers = api._runtime().driver().handlers
        assert set(handlers) == set(messages.TO_DRIVER), "one handler per operation, and one operation per handler"
        for op, kind in messages.TO_DRIVER.items():
            _check(op, kind, handlers[op], skip_first=True)  # the first is the worker it came from
    finally:
        nexus.shutdown()


class _NoChannel:
    """A worker runtime is built here only for its handler table: nothing is sent or received."""


def test_a_worker_handles_every_message_the_driver_sends_with_its_fields():
    worker = WorkerRuntime(_NoChannel(), 1, "task", None)  # type: ignore[arg-type]
    assert set(worker.handlers) == set(messages.TO_WORKER)
    # Work runs through these, with the message's fields after its operation's name
    for op, runner in (("task", worker._run_task), ("call", worker._call), ("create_actor", worker._create_actor)):
        _check(op, messages.TO_WORKER[op], runner, skip_first=False)


def test_parse_gives_the_typed_message_and_refuses_what_does_not_fit():
    task = messages.parse(("task", 7, b"f", "f", b"args", [], [8], 7), to_driver=False)
    assert isinstance(task, messages.Task) and task.task_id == 7 and task.result_ids == [8]
    control = messages.parse(("control", 3, "kill", 42, True), to_driver=True)
    assert control == messages.Control(3, "kill", (42, True))
    with pytest.raises(ValueError, match="unknown operation"):
        messages.parse(("teleport", 1), to_driver=True)
    with pytest.raises(ValueError, match="does not fit"):
        messages.parse(("done",), to_driver=True)


@nexus.remote
def tunables_here():
    from nexus.cluster import session

    config = session.current().config
    return config.steal_after, config.hold_age, config.sched_batch


def test_workers_get_the_clusters_config_with_their_channel(monkeypatch):
    monkeypatch.setenv("NEXUS_SCHED_BATCH", "0")
    nexus.init(num_cpus=1, _system_config={"steal_after": 0.02, "hold_age": 0.0005})
    try:
        assert nexus.get(tunables_here.remote(), timeout=30) == (0.02, 0.0005, False)
    finally:
        nexus.shutdown()
    with pytest.raises(ValueError, match="unknown _system_config key"):
        nexus.init(num_cpus=1, _system_config={"no_such_tunable": 1})
    assert not nexus.is_initialized()
