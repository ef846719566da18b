"""Where the calling code runs: ``nexus.get_runtime_context()`` (Ray's ``ray.get_runtime_context()``).

In a task or an actor's method it names the cluster (its job), the node, the
task (or call) and the actor, the resources the task was given and whether
its actor was restarted; in a driver, the job, the node and the namespace
(no task, no actor).
"""

from __future__ import annotations

from typing import Any

__all__ = ["RuntimeContext", "get_runtime_context"]


class RuntimeContext:
    """A snapshot of the calling code's place, taken when it was asked for (as Ray's)."""

    def __init__(self, facts: dict[str, Any], task_id: int, actor_id: int | None, worker: str, current_actor: Any) -> None:
        self._facts, self._task_id, self._actor_id, self._worker, self._current_actor = facts, task_id, actor_id, worker, current_actor

    def get_job_id(self) -> str:
        return str(self._facts["job_id"])

    def get_node_id(self) -> str:
        """The node, as ``nexus.nodes()`` names it (``NodeID``)."""
        return str(self._facts["node_id"])

    def get_task_id(self) -> str | None:
        """The running task's (or actor call's) id in hex; None in a driver."""
        return f"{self._task_id:x}" if self._task_id else None

    def get_actor_id(self) -> str | None:
        """The actor's id in hex, as ``nexus list actors`` shows it; None outside an actor."""
        return f"{self._actor_id:016x}" if self._actor_id is not None else None

    def get_actor_name(self) -> str | None:
        return self._facts.get("actor_name")

    def get_worker_id(self) -> str:
        return self._worker

    def get_assigned_resources(self) -> dict[str, float]:
        """What the running task or actor holds (``{"CPU": 1.0}`` for a task by default; empty in a driver)."""
        return dict(self._facts.get("resources", {}))

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

    def get(self) -> dict[str, Any]:
        return {"job_id": self.get_job_id(), "node_id": self.get_node_id(), "task_id": self.get_task_id(), "actor_id": self.get_actor_id()}

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
    facts = session.control("state", "context", running)
    if host is None:
        return RuntimeContext(facts, running, None, getattr(session, "where", "worker"), None)
    handle = ActorHandle(host.actor_id, type(host.instance).__qualname__)
    return RuntimeContext(facts, running, host.actor_id, getattr(session, "where", "worker"), handle)
