"""Nexus: Ray-style tasks and actors over shared memory, made for notebooks.

This module is the everyday face; it re-exports names and starts nothing.
The actor runtime and its plug points live in :mod:`nexus.core`; fakes for
tests (manual clock, deterministic dispatcher) in :mod:`nexus.testing`.
"""

from . import state
from ._version import __version__
from .cluster.api import (
    ObjectRef,
    cancel,
    event_stream,
    get,
    get_actor,
    init,
    is_initialized,
    kill,
    put,
    remote,
    shutdown,
    wait,
)
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
    "cancel",
    "event_stream",
    "get",
    "get_actor",
    "init",
    "is_initialized",
    "kill",
    "put",
    "remote",
    "shutdown",
    "state",
    "timeline",
    "wait",
]


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext nexus``: the ``%nexus`` magic (status, workers, actors, tasks, timeline, view, trace)."""
    from .notebook import load_ipython_extension as load

    load(ipython)


def __getattr__(name: str) -> object:  # the live views import ipywidgets: only when asked for
    if name in ("ClusterView", "TraceView", "progress"):
        from .notebook import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module 'nexus' has no attribute {name!r}")


def timeline(path: str | None = None) -> dict:  # type: ignore[type-arg]
    """The cluster's recent tasks and calls as a Chrome / Perfetto trace (written to ``path`` when given)."""
    from .observe import timeline as _timeline

    return _timeline(path)
