"""Where the calling code runs: ``nexus.get_runtime_context()`` (Ray's ``ray.get_runtime_context()``).

In a task or an actor's method (or its constructor) it names the cluster (its
job), the node, the task (or call) and its name, the actor, the resources the
task was given and whether its actor was restarted; in a driver, the job, the
node and the namespace (no task, no actor).
"""

from __future__ import annotations

import inspect
import os
import warnings
from typing import Any

__all__ = ["ContextID", "RuntimeContext", "get_runtime_context"]


class ContextID(str):
    """An id as ``RuntimeContext.get()`` and the deprecated properties give it: the hex text, with ``hex()`` (as
    Ray's ``JobID``, ``NodeID``, ``TaskID`` and ``ActorID``)."""

    __slots__ = ()

    def hex(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"ContextID({str(self)!r})"


def _deprecated(instead: str) -> None:
    warnings.warn(f"Use {instead}() instead", DeprecationWarning, stacklevel=3)


class RuntimeContext:
    """A snapshot of the calling code's place, taken when it was asked for (as Ray's)."""

    def __init__(
        self,
        facts: dict[str, Any],
        task_id: int,
        actor_id: int | None,
        worker: str,
        current_actor: Any,
        names: tuple[str | None, str | None] = (None, None),
    ) -> None:
        self._facts, self._task_id, self._actor_id, self._worker, self._current_actor = facts, task_id, actor_id, worker, current_actor
        self._task_name, self._function_name = names

    def get_job_id(self) -> str:
        return str(self._facts["job_id"])

    def get_node_id(self) -> str:
        """The node, as ``nexus.nodes()`` names it (``NodeID``)."""
        return str(self._facts["node_id"])

    def get_task_id(self) -> str | None:
        """The running task's (or actor call's) id in hex; None in a driver (and in an actor's constructor)."""
        return f"{self._task_id:x}" if self._task_id else None

    def get_actor_id(self) -> str | None:
        """The actor's id in hex, as ``nexus list actors`` shows it; None outside an actor."""
        return f"{self._actor_id:016x}" if self._actor_id is not None else None

    def get_actor_name(self) -> str | None:
        """The actor's name: ``""`` for an actor without one, None outside an actor (as Ray's)."""
        if self._actor_id is None:
            return None
        return self._facts.get("actor_name") or ""

    def get_task_name(self) -> str | None:
        """The running task's name (its ``name=`` option, else its function's), or ``Class.method`` for an actor's
        call; None in a driver."""
        return self._task_name

    def get_task_function_name(self) -> str | None:
        """The full name (``module.name``) of the function or method that runs; None in a driver."""
        return self._function_name

    def get_worker_id(self) -> str:
        return self._worker

    def get_assigned_resources(self) -> dict[str, float]:
        """What the running task or actor holds (``{"CPU": 1.0}`` for a task by default; empty in a driver)."""
        return dict(self._facts.get("resources", {}))

    def get_placement_group_id(self) -> str | None:
        """The placement group the calling task or actor runs in, in hex; None in a driver or outside any group."""
        group = self._placement_group()
        return None if group is None else str(group.id.hex())

    def _placement_group(self) -> Any:
        from .cluster.placement_groups import get_current_placement_group

        return get_current_placement_group()

    @property
    def namespace(self) -> str:
        return str(self._facts.get("namespace", "default"))

    @property
    def was_current_actor_reconstructed(self) -> bool:
        """Whether the actor this runs in was restarted (after its process died) at least once."""
        return bool(self._facts.get("restarts"))

    @property
    def current_actor(self) -> Any:
        """A handle to the actor this runs in; RuntimeError outside an actor."""
        if self._current_actor is None:
            raise RuntimeError("current_actor is the handle of the actor this runs in: this runs in none")
        return self._current_actor

    # -- Ray's deprecated forms: the ids with hex() ------------------------------------------------

    @property
    def job_id(self) -> ContextID:
        _deprecated("get_job_id")
        return ContextID(self.get_job_id())

    @property
    def node_id(self) -> ContextID:
        _deprecated("get_node_id")
        return ContextID(self.get_node_id())

    @property
    def task_id(self) -> ContextID | None:
        _deprecated("get_task_id")
        found = self.get_task_id()
        return None if found is None else ContextID(found)

    @property
    def actor_id(self) -> ContextID | None:
        _deprecated("get_actor_id")
        found = self.get_actor_id()
        return None if found is None else ContextID(found)

    @property
    def current_placement_group_id(self) -> Any:
        """The placement group's ``PlacementGroupID`` (None outside any group)."""
        _deprecated("get_placement_group_id")
        group = self._placement_group()
        return None if group is None else group.id

    def get(self) -> dict[str, Any]:
        """The job, node and namespace, and the task and actor where there are some (their keys absent where not)."""
        context: dict[str, Any] = {
            "job_id": ContextID(self.get_job_id()),
            "node_id": ContextID(self.get_node_id()),
            "namespace": self.namespace,
        }
        task, actor = self.get_task_id(), self.get_actor_id()
        if task is not None:
            context["task_id"] = ContextID(task)
        if actor is not None:
            context["actor_id"] = ContextID(actor)
        return context

    def __repr__(self) -> str:
        return f"RuntimeContext({self.get()})"


def get_runtime_context() -> RuntimeContext:
    """The calling code's place in the cluster (starts a local cluster if there is none, as Ray's does)."""
    from .cluster.actor_handles import ActorHandle
    from .cluster.definitions import _runtime
    from .cluster.worker.execution import _trace_context

    session = _runtime()
    driver = session.driver()
    if driver is not None:  # (this process drives the cluster: no task, no actor)
        facts = {"job_id": f"{driver.node_id:06x}", "node_id": f"{driver.node_id:06x}", "namespace": driver.namespace}
        return RuntimeContext(facts, 0, None, "driver", None)
    _trace, running = _trace_context.get()
    host = getattr(session, "actor", None)
    # (in an actor's constructor no call runs and the host is not there yet: the head finds it by this worker)
    facts = session.control("state", "context", running, (int(getattr(session, "worker_id", 0) or 0), os.getpid()))
    where = getattr(session, "where", "worker")
    if host is not None:
        cls: Any = type(host.instance)
        handle = ActorHandle(host.actor_id, cls.__qualname__)
        return RuntimeContext(facts, running, host.actor_id, where, handle, _call_names(cls, facts.get("method")))
    actor_id = facts.get("actor_id")
    if actor_id is not None:  # (its constructor)
        cls = _definition(session, facts.get("actor_cls_id"))
        names = _call_names(cls, "__init__") if cls is not None else (f"{facts.get('actor_cls')}.__init__", None)
        return RuntimeContext(facts, running, actor_id, where, ActorHandle(actor_id, str(facts.get("actor_cls"))), names)
    return RuntimeContext(facts, running, None, where, None, _task_names(session, facts))


def _definition(session: Any, def_id: Any) -> Any:
    """The function or class this worker has under ``def_id`` (None if it has none)."""
    defs = getattr(session, "defs", None)
    return defs.get(def_id) if isinstance(defs, dict) and def_id else None


def _task_names(session: Any, facts: dict[str, Any]) -> tuple[str | None, str | None]:
    """A task's name and its function's full name (as Ray's: ``module.name``)."""
    name = facts.get("task_name")
    fn = _definition(session, facts.get("fn_id"))
    fn = getattr(fn, "__wrapped__", fn)
    if fn is None or not hasattr(fn, "__name__"):
        return name, name
    return name or fn.__name__, f"{fn.__module__}.{fn.__name__}"


def _call_names(cls: type, method: str | None) -> tuple[str | None, str | None]:
    """An actor call's name (``Class.method``) and its method's full name, as Ray's: ``module.Class.method``, and
    for a coroutine method ``module.`` and its qualified name."""
    if method is None:
        return None, None
    found = inspect.getattr_static(cls, method, None)
    if inspect.iscoroutinefunction(found):
        return f"{cls.__name__}.{method}", f"{cls.__module__}.{found.__qualname__}"
    return f"{cls.__name__}.{method}", f"{cls.__module__}.{cls.__name__}.{method}"
