"""Running a task in a worker: its arguments read, its function called, its results made, the answer given."""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import threading
import time
from collections.abc import Sequence
from types import GeneratorType
from typing import TYPE_CHECKING, Any, NoReturn

from ...core.errors import DeserializationError, NexusError, SerializationError, TaskCancelledError
from ..generators import YIELDS_KWARG
from ..values import Blob, current_client, deserialize, error_blob, join_args, serialize
from .answers import HeldAnswers
from .yields import Partial, drain

__all__ = ["TaskExecution"]

_now = time.monotonic_ns
# What a task can raise that is the cluster's, not its code's: at get it is itself, not a TaskError too
_NOT_THE_USERS = (TaskCancelledError, SerializationError, DeserializationError)
_trace_context: contextvars.ContextVar[tuple[int, int]] = contextvars.ContextVar("nexus_trace", default=(0, 0))
"""(trace, span) of the task or call running in this context: what work it submits is part of that trace."""


class TaskExecution:
    """How a task (or an actor's call, see ``ActorHosting``) runs; a part of ``WorkerRuntime``, which sets these."""

    defs: dict[bytes, Any]
    where: str
    main_ident: int | None
    exiting: bool
    current_task: int
    cancelled: set[int]
    cancellable: int
    last_answered: int
    answers: HeldAnswers

    if TYPE_CHECKING:

        def send(self, body: tuple[Any, ...]) -> None: ...

        def get_blobs(self, ids: Sequence[int], timeout: float | None) -> list[Blob] | None: ...

    def _fetch(self, oid: int) -> Blob:
        """An argument the driver had on disk when it sent the work: a get, answered once it is read back."""
        blobs = self.get_blobs([oid], None)
        assert blobs is not None  # (no timeout)
        return blobs[0]

    def _arguments(self, args_blob: Blob | int, deps: Sequence[tuple[int, Blob | None]]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if isinstance(args_blob, int):  # on disk at the driver: asked for (see ObjectDirectory.ship_args)
            args_blob = self._fetch(args_blob)
        args, kwargs = deserialize(args_blob)
        values = []
        for oid, shipped in deps:
            blob = self._fetch(oid) if shipped is None else shipped
            if blob.error:
                raise _DependencyFailed(blob)
            values.append(deserialize(blob))
        return join_args(args, kwargs, values)

    def _results(self, value: Any, result_ids: list[int], name: str) -> list[tuple[int, Blob]]:
        if len(result_ids) == 1:
            return [(result_ids[0], serialize(value, f"the result of {name}"))]
        values = list(value) if isinstance(value, (tuple, list)) else None
        if values is None or len(values) != len(result_ids):
            raise ValueError(f"{name} has num_returns={len(result_ids)} but returned {type(value).__name__} {value!r:.60}")
        items: list[tuple[int, Blob]] = []
        try:
            for oid, v in zip(result_ids, values, strict=True):
                items.append((oid, serialize(v, f"a result of {name}")))
        except BaseException:
            _give_back([blob for _, blob in items])  # the call fails as a whole: regions of the others come back
            raise
        return items

    def _outcome(
        self, fn: Any, name: str, args_blob: Blob, deps: list[tuple[int, Blob]], result_ids: list[int], yields: Any = None
    ) -> tuple[list[tuple[int, Blob]], Any, tuple[int, int, int, int, bool]]:
        """The results (serialized), the value itself, and when it ran (start, arguments read, returned, results
        made; monotonic ns; ok). Keep the value until the results are sent, so that refs inside it are
        released only after the message holding them."""
        main = threading.get_ident() == self.main_ident
        start = ready = ran = _now()
        try:
            args, kwargs = self._arguments(args_blob, deps)
            if kwargs and YIELDS_KWARG in kwargs:  # (a call's own num_returns for a generator method)
                yields = kwargs.pop(YIELDS_KWARG)
            ready = _now()
            if main:
                self.cancellable += 1
            try:
                value = fn(*args, **kwargs)
                if yields is not None or type(value) is GeneratorType:  # (values yielded: see worker.yields)
                    value = drain(self, value, yields, result_ids, name)
            finally:
                if main:
                    self.cancellable -= 1
            ran = _now()
            if isinstance(value, Partial):  # (a generator that failed after some of its values; kept, as above)
                return value.results(self.where, result_ids, name), value, (start, ready, ran, _now(), False)
            return self._results(value, result_ids, name), value, (start, ready, ran, _now(), True)
        except _DependencyFailed as failed:
            return [(oid, failed.blob) for oid in result_ids], None, (start, ready, ready, _now(), False)
        except BaseException as exc:  # the task's failure is its result
            if isinstance(exc, (KeyboardInterrupt, SystemExit)) and self.exiting:
                raise
            if isinstance(exc, SystemExit):
                self._exit_for_user_code(exc, name)
            blob = error_blob(exc, self.where, user=not isinstance(exc, _NOT_THE_USERS))
            ran = max(ran, ready)
            return [(oid, blob) for oid in result_ids], None, (start, ready, ran, _now(), False)

    def _run_task(
        self,
        task_id: int,
        fn_id: bytes,
        name: str,
        args_blob: Blob,
        deps: list[tuple[int, Blob]],
        result_ids: list[int],
        trace: int = 0,
        yields: Any = None,
        on_top: bool = False,
    ) -> None:
        fn = self.defs.get(fn_id)
        start = time.perf_counter()
        outer, self.current_task = self.current_task, task_id
        context_token = _trace_context.set((trace or task_id, task_id))
        timing: Any = None
        try:
            if fn is None:
                blob = error_blob(NexusError(f"worker has no definition of {name}"), self.where)
                items = [(oid, blob) for oid in result_ids]
            elif task_id in self.cancelled:  # (nexus.cancel while it waited here behind another: it never runs)
                blob = error_blob(TaskCancelledError(f"task {name} was cancelled before it ran (nexus.cancel)"), self.where)
                items = [(oid, blob) for oid in result_ids]
            else:
                items, _value, timing = self._outcome(fn, name, args_blob, deps, result_ids, yields)
        finally:
            _trace_context.reset(context_token)
            self.current_task = outer
            self.cancelled.discard(task_id)
        self.last_answered = task_id
        if threading.get_ident() == self.main_ident:
            self.answers.answer(task_id, items, fn_id, time.perf_counter() - start, timing)
        else:
            self.send(("done", task_id, items, timing))

    def _exit_for_user_code(self, exc: SystemExit, what: str) -> NoReturn:
        """``sys.exit()`` in user code: this worker process exits, as a Ray worker does.

        The driver sees a worker die: a task is retried per ``max_retries``
        (then fails with WorkerCrashedError), an actor restarts per
        ``max_restarts``. Answers held back for earlier calls go first.
        """
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        print(f"nexus {self.where}: {what} called sys.exit({exc.code!r}); the worker process exits", file=sys.stderr, flush=True)
        answers = self.answers
        if answers.held_lock.acquire(timeout=1.0):
            try:
                answers.flush_held()
            except Exception:
                pass
            finally:
                answers.held_lock.release()
        os._exit(code)


def _give_back(blobs: list[Blob]) -> None:
    client = current_client()
    for blob in blobs:
        if blob.region is not None and client is not None:
            with contextlib.suppress(Exception):
                client.free(*blob.region)


class _DependencyFailed(Exception):
    def __init__(self, blob: Blob) -> None:
        super().__init__("a dependency failed")
        self.blob = blob


class _Unloadable:
    """A function or class that could not be loaded in this worker; calling it raises why."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def __call__(self, *_args: Any, **_kwargs: Any) -> Any:
        raise self.exc
