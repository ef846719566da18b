"""Nexus: Ray-style tasks and actors over shared memory, made for notebooks.

This module is the everyday face; it re-exports names and starts nothing.
The actor runtime and its plug points live in :mod:`nexus.core`; fakes for
tests (manual clock, deterministic dispatcher) in :mod:`nexus.testing`.
"""

from typing import TYPE_CHECKING

from ._version import __version__
from .cluster.api import (
    ObjectRef,
    available_resources,
    cancel,
    cluster_resources,
    event_stream,
    get,
    get_actor,
    init,
    is_initialized,
    kill,
    nodes,
    put,
    remote,
    shutdown,
    wait,
)
from .cluster.strategies import NodeAffinitySchedulingStrategy
from .core import _EXPORTS as _core_exports  # the in-process runtime's names (the modules load on first use)

if TYPE_CHECKING:
    from . import (
        actor,  # noqa: F401  (loaded on first use, as state and util)
        exceptions,  # noqa: F401
        state,
        util,
    )
    from .cluster.bridge.actor import attach_bridge
    from .cluster.services.drain import drain_node
    from .core import (
        Actor,
        ActorRef,
        ActorSystem,
        Context,
        Directive,
        Future,
        MailboxKind,
        MailboxSpec,
        NexusError,
        OverflowPolicy,
        PoisonPill,
        Props,
        ReceiveTimeout,
        Started,
        Stop,
        SupervisorBuilder,
        SystemConfig,
        Terminated,
    )


__all__ = [
    "Actor",
    "ActorRef",
    "ActorSystem",
    "Context",
    "Directive",
    "Future",
    "MailboxKind",
    "MailboxSpec",
    "NexusError",
    "NodeAffinitySchedulingStrategy",
    "ObjectRef",
    "OverflowPolicy",
    "PoisonPill",
    "Props",
    "ReceiveTimeout",
    "Started",
    "Stop",
    "SupervisorBuilder",
    "SystemConfig",
    "Terminated",
    "__version__",
    "attach_bridge",
    "available_resources",
    "cancel",
    "cluster_resources",
    "drain_node",
    "event_stream",
    "get",
    "get_actor",
    "init",
    "is_initialized",
    "kill",
    "nodes",
    "put",
    "remote",
    "shutdown",
    "state",
    "timeline",
    "util",
    "wait",
]


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext nexus``: the ``%nexus`` magic (status, workers, actors, tasks, timeline, view, trace)."""
    from .notebook import load_ipython_extension as load

    load(ipython)


def __getattr__(name: str) -> object:
    """Names imported on first use (PEP 562): a worker process imports this package too, and starts faster
    without the in-process runtime and the state API; the live views import ipywidgets."""
    if name in __all__ and name in _core_exports:
        from . import core

        value = getattr(core, name)
    elif name in ("state", "util", "exceptions", "actor"):  # (as Ray's ray.util, ray.exceptions, ray.actor)
        import importlib

        value = importlib.import_module(f".{name}", __name__)
    elif name == "attach_bridge":  # (the device bridge: pyserial and CBOR load only when it is used)
        from .cluster.bridge.actor import attach_bridge

        value = attach_bridge
    elif name == "get_runtime_context":  # (as Ray's: not in __all__, which keeps to one screen)
        from .runtime_context import get_runtime_context

        value = get_runtime_context
    elif name == "ObjectID":  # (Ray's old name of ObjectRef)
        value = ObjectRef
    elif name in ("ObjectRefGenerator", "DynamicObjectRefGenerator"):  # (what generator tasks give, as Ray's)
        from .cluster import generators

        value = getattr(generators, name)
    elif name == "method":  # (@nexus.method, as Ray's @ray.method)
        from .cluster.actor_handles import method

        value = method
    elif name == "drain_node":
        from .cluster.services.drain import drain_node

        value = drain_node
    elif name in ("ClusterView", "TaskStream", "TraceView", "progress"):
        from . import notebook

        return getattr(notebook, name)
    else:
        raise AttributeError(f"module 'nexus' has no attribute {name!r}")
    globals()[name] = value
    return value


def timeline(path: str | None = None) -> dict:  # type: ignore[type-arg]
    """The cluster's recent tasks and calls as a Chrome / Perfetto trace (written to ``path`` when given)."""
    from .observe import timeline as _timeline

    return _timeline(path)
