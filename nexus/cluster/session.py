"""The one current cluster of this process, behind the small protocol the public API calls.

A process belongs to at most one cluster at a time: as its driver (after
``nexus.init()``: a :class:`~nexus.cluster.head.runtime.Runtime`), or as one of
its workers (a :class:`~nexus.cluster.worker.WorkerRuntime`). Both implement
:class:`Session`, so the API never asks which one it has.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..core.event_stream import EventStream
    from .values import Blob, ObjectRef

__all__ = ["Session", "current", "current_driver", "current_or_start", "set_current"]


class Session(Protocol):
    """What ``nexus.remote``, ``get``, ``wait``, ``put``, ``cancel``, ``kill`` and ``get_actor`` ask of a cluster."""

    new_id: Callable[[], int]
    """A fresh id of this cluster, qualified by this node and process (see :mod:`.state.ids`)."""

    def submit_task(
        self, fn_id: bytes, factory: Callable[[], Blob], name: str, args: tuple, kwargs: dict, num_returns: int, options: dict
    ) -> list[ObjectRef]: ...

    def create_actor(self, cls_id: bytes, factory: Callable[[], Blob], name: str, args: tuple, kwargs: dict, options: dict) -> int: ...

    def submit_call(
        self, actor_id: int, method: str, args: tuple, kwargs: dict, num_returns: int, tell: bool, bounded: bool = False
    ) -> list[ObjectRef]:
        """A call of ``method``; ``bounded``: the actor has max_pending_calls or a bounded mailbox (its handle says)."""
        ...

    def put(self, value: Any) -> ObjectRef: ...

    def get_blobs(self, ids: Sequence[int], timeout: float | None) -> list[Blob] | None:
        """The blobs of ``ids`` in order, pinned for reading while they live; None once ``timeout`` passed.

        May stop after the first that holds an error (the caller raises it; later ones need not be waited for).
        """
        ...

    def wait_ids(self, ids: Sequence[int], num_returns: int, timeout: float | None) -> list[int]: ...

    def cancel(self, oid: int, force: bool, recursive: bool = True) -> bool: ...

    def kill(self, actor_id: int, no_restart: bool) -> None: ...

    def get_actor(self, name: str, namespace: str | None) -> tuple[int, str, bool]:
        """(actor id, class name, whether it is bounded) of the named actor; ValueError when there is none."""
        ...

    def nodes(self) -> list[dict[str, Any]]:
        """The cluster's nodes, as ``ray.nodes()`` gives them."""
        ...

    def cluster_resources(self, available: bool) -> dict[str, float]:
        """The cluster's resources in all, or (``available``) those free now."""
        ...

    def control(self, op: str, *args: Any) -> Any:
        """(A worker's or an attached driver's session) ask the driver or head to run ``control_<op>(*args)``."""
        ...

    def event_stream(self) -> EventStream:
        """The cluster's events; RuntimeError where they are not kept (in a worker)."""
        ...

    def driver(self) -> Any:
        """The driver's runtime, for the state API and the views; None in a worker."""
        ...

    def info(self) -> dict[str, Any]:
        """Facts shown by ``init``: workers, CPUs, transport, namespace."""
        ...

    def shutdown(self) -> bool:
        """Stop the cluster if this process owns it (the driver); False, and nothing done, in a worker."""
        ...


_current: Session | None = None


def set_current(session: Session | None) -> None:
    global _current
    _current = session


def current() -> Session | None:
    return _current


starter: Callable[[], Any] | None = None  # what starts a local cluster (``nexus.init``; set by nexus.cluster.api)
_starting = threading.Lock()


def current_or_start() -> Session:
    """This process's cluster; if it has none, a local one started as ``nexus.init()`` would, as Ray starts one
    at the first ``.remote()``, ``get``, ``put`` or ``wait`` (not with ``NEXUS_AUTO_INIT=0``: then a RuntimeError)."""
    if _current is None:
        if os.environ.get("NEXUS_AUTO_INIT", "1") == "0" or starter is None:
            raise RuntimeError("no Nexus cluster in this process: call nexus.init() first (NEXUS_AUTO_INIT=0 starts none)")
        with _starting:
            if _current is None:
                starter()
    assert _current is not None
    return _current


def current_driver(what: str) -> Any:
    """The driver's runtime of this process; RuntimeError saying ``what`` needs one when there is none (or this is a worker)."""
    driver = _current.driver() if _current is not None else None
    if driver is None:
        raise RuntimeError(f"{what} is the driver's: call nexus.init() in this process first")
    return driver
