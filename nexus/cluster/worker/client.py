"""What user code inside a worker calls (``.remote()``, ``nexus.get``, ``nexus.put``, ...): requests to the driver."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ...core.errors import GetTimeoutError
from ..values import Blob, ObjectRef, deserialize, serialize, split_args
from .execution import _trace_context

__all__ = ["WorkerClient"]


class _Waiter:
    __slots__ = ("event", "ids", "results")

    def __init__(self, ids: list[int]) -> None:
        self.ids = ids
        self.results: dict[int, Blob] = {}
        self.event = threading.Event()


class WorkerClient:
    """The worker's side of ``nexus.get``, ``.remote()`` and the rest; a part of ``WorkerRuntime``, which sets
    these and waits for the answers (``_wait``: the main thread keeps receiving and running what arrives)."""

    shipped: set[bytes]
    waiters: dict[int, _Waiter]
    requests: Iterator[int]
    new_id: Callable[[], int]
    worker_id: int
    queue_full: bool
    submit_window: int
    submitted: int
    queue_room: _Waiter
    exiting: bool

    if TYPE_CHECKING:

        def send(self, body: tuple[Any, ...]) -> None: ...

        def _wait(self, waiter: _Waiter, timeout: float | None, blocking: bool = True, told: bool = False) -> None: ...

    def _main_thread_waits(self) -> bool:
        """Whether a wait here holds up a task worker's main thread (not in a driver attached to a head)."""
        return False

    # -- answers from the driver (the same in a worker and in a driver attached to a head) ---------

    def _on_objects(self, body: tuple[Any, ...]) -> None:
        _, request, items = body
        waiter = self.waiters.get(request)
        if waiter is not None:
            waiter.results.update(items)
            waiter.event.set()

    def _on_window(self, body: tuple[Any, ...]) -> None:
        """How many tasks it may submit before it asks the driver for room."""
        self.submit_window = body[1]

    def _on_backpressure(self, body: tuple[Any, ...]) -> None:
        """The driver's task queue is full (True) or has room again (False)."""
        self.queue_full = body[1]
        if body[1]:
            self.queue_room = _Waiter([])
        else:
            self.queue_room.event.set()

    def ship(self, def_id: bytes, blob_factory: Any) -> Blob | None:
        if def_id in self.shipped:
            return None
        self.shipped.add(def_id)
        return blob_factory()

    def submit_task(
        self, fn_id: bytes, blob_factory: Any, name: str, args: tuple, kwargs: dict, num_returns: int, options: dict
    ) -> list[ObjectRef]:
        if self.queue_full:
            self._wait_for_queue_room()
        self.submitted += 1
        if self.submitted >= self.submit_window:  # a window's worth sent: ask for room before more (back-pressure)
            self.submitted = 0
            self._request(("room",))
        definition = self.ship(fn_id, blob_factory)
        args, kwargs, deps = split_args(args, kwargs)
        args_blob = serialize((args, kwargs), f"the arguments of {name}")
        result_ids = [self.new_id() for _ in range(num_returns)]
        trace, parent = _trace_context.get()
        self.send(("submit", fn_id, definition, name, args_blob, deps, result_ids, options, trace, parent))
        return [ObjectRef(oid) for oid in result_ids]

    def _wait_for_queue_room(self) -> None:
        """Back-pressure, as for a submitter in the driver: wait (receiving, running tasks sent here) until the
        driver's task queue has room again."""
        while self.queue_full and not self.exiting:
            self._wait(self.queue_room, 1.0)

    def create_actor(self, cls_id: bytes, blob_factory: Any, name: str, args: tuple, kwargs: dict, options: dict) -> int:
        definition = self.ship(cls_id, blob_factory)
        args, kwargs, deps = split_args(args, kwargs)
        args_blob = serialize((args, kwargs), f"the arguments of {name}")
        actor_id = self.new_id()
        reply = self._request(("create_actor", actor_id, cls_id, definition, name, args_blob, deps, options))
        if reply is not None:
            raise deserialize(reply).to_exception()
        return actor_id

    def submit_call(
        self, actor_id: int, method: str, args: tuple, kwargs: dict, num_returns: int, tell: bool, bounded: bool = False
    ) -> list[ObjectRef]:
        args, kwargs, deps = split_args(args, kwargs)
        args_blob = serialize((args, kwargs), f"the arguments of {method}")
        result_ids = [] if tell else [self.new_id() for _ in range(num_returns)]
        trace, parent = _trace_context.get()
        refs = [ObjectRef(oid) for oid in result_ids]  # (made first: dropped, they release the results, see below)
        if bounded:  # the driver says whether the call is admitted (and may make it wait for room), as in the driver
            reply = self._request(("submit_call_bounded", actor_id, method, args_blob, deps, result_ids, trace, parent))
            if reply is not None:  # refused: the refs go with this frame, and the driver frees the results
                raise deserialize(reply).to_exception()
        else:
            self.send(("submit_call", actor_id, method, args_blob, deps, result_ids, trace, parent))
        return refs

    def put(self, value: Any) -> ObjectRef:
        blob = serialize(value, "the value to put")
        oid = self.new_id()
        self.send(("put", oid, blob))
        return ObjectRef(oid)

    def _request(self, body: tuple[Any, ...], timeout: float | None = None, blocking: bool = True) -> Any:
        """Send a request whose answer comes back as ``objects`` under a fresh request id; return the answer.

        ``blocking=False`` for a short request (an arena region): the worker
        does not count as blocked meanwhile and runs nothing else.
        """
        request = next(self.requests)
        waiter = _Waiter([0])
        self.waiters[request] = waiter
        try:
            self.send((body[0], request, *body[1:]))
            self._wait(waiter, timeout, blocking)
            if not waiter.event.is_set():
                raise GetTimeoutError(f"no answer from the driver within {timeout} s")
            return waiter.results.get(0)
        finally:
            self.waiters.pop(request, None)

    def get_blobs(self, ids: Sequence[int], timeout: float | None) -> list[Blob] | None:
        request = next(self.requests)
        waiter = _Waiter(list(ids))
        self.waiters[request] = waiter
        try:
            blocks = self._main_thread_waits()  # (then the driver counts this worker blocked, if it must wait)
            self.send(("get", request, list(ids), timeout, blocks))
            self._wait(waiter, timeout, told=blocks)
            if not waiter.event.is_set():
                return None
            results = waiter.results
            return [results[oid] for oid in ids]
        finally:
            self.waiters.pop(request, None)

    def wait_ids(self, ids: Sequence[int], num_returns: int, timeout: float | None) -> list[int]:
        request = next(self.requests)
        waiter = _Waiter(list(ids))
        self.waiters[request] = waiter
        try:
            self.send(("wait", request, list(ids), num_returns, timeout))
            self._wait(waiter, None if timeout is None else timeout + 5.0)
            ready = waiter.results.get(0)
            return list(ready) if ready is not None else []  # type: ignore[call-overload]
        finally:
            self.waiters.pop(request, None)

    def control(self, op: str, *args: Any) -> Any:
        """Ask the driver to run ``control_<op>(*args)`` (a kill, a cancel, a name lookup); its error is raised here."""
        result = self._request(("control", op, *args))
        if isinstance(result, tuple) and result and result[0] == "error":
            raise deserialize(result[1]).to_exception()
        return result

    # -- the rest of the session (see nexus.cluster.session) ---------------------------------------

    def cancel(self, oid: int, force: bool = False, recursive: bool = True) -> bool:
        return bool(self.control("cancel", oid, force, recursive))

    def kill(self, actor_id: int, no_restart: bool = True) -> None:
        self.control("kill", actor_id, no_restart)

    def get_actor(self, name: str, namespace: str | None) -> tuple[int, str, bool]:
        actor_id, cls_name, bounded = self.control("get_actor", name, namespace)
        return actor_id, cls_name, bounded

    def nodes(self) -> list[dict[str, Any]]:
        return list(self.control("nodes"))

    def cluster_resources(self, available: bool) -> dict[str, float]:
        return dict(self.control("cluster_resources", available))

    def event_stream(self) -> Any:
        raise RuntimeError("the event stream is the driver's: subscribe in the process that called nexus.init()")

    def driver(self) -> None:
        return None

    def info(self) -> dict[str, Any]:
        return {"worker": self.worker_id, "pid": os.getpid()}

    def shutdown(self) -> bool:
        return False  # the cluster is its driver's to stop
