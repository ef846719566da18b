"""Hosting one actor in a worker: its instance made, its calls run in order, on a thread pool or on an event loop."""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ...core.errors import NexusError, TaskCancelledError
from ..generators import YIELDS_KWARG, method_yields
from ..values import Blob, deserialize, error_blob
from .execution import _NOT_THE_USERS, TaskExecution, _DependencyFailed, _now, _trace_context
from .yields import Partial, drain_async, is_generator

if TYPE_CHECKING:
    import asyncio

__all__ = ["ActorHosting"]


def _set_policy(batch: bool) -> None:
    """Put the calling thread under ``SCHED_BATCH`` (or back to the normal policy).

    A worker's receiving thread runs under SCHED_BATCH: when the driver
    wakes a parked worker, the worker takes the next free core instead of
    preempting the driver on its own. On a host with more busy processes
    than cores (calls spread over several actors, tasks submitted from
    several threads), every wake-up otherwise cost the driver 50-130 µs of
    its core, and 1:n actor calls ran 1.6x slower. With a core free the
    worker runs at once either way. Threads that run an actor's calls
    handed over by the receiving thread (a thread pool) keep the normal
    policy: the hand-over must preempt the spinning receiver. Other threads
    started in the worker, and processes started by tasks, inherit the
    policy (they still get their fair share of CPU; they just do not preempt
    on waking). ``NEXUS_SCHED_BATCH=0`` turns this off.
    """
    if hasattr(os, "SCHED_BATCH"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_BATCH if batch else os.SCHED_OTHER, os.sched_param(0))


class _ActorHost:
    def __init__(self, actor_id: int, instance: Any, max_concurrency: int, loop: Any, groups: dict[str, int] | None = None) -> None:
        is_async = loop is not None
        self.actor_id = actor_id
        self.instance = instance
        self.is_async = is_async
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pool: ThreadPoolExecutor | None = None
        self.semaphore: asyncio.Semaphore | None = None
        # an async actor's calls running now, by call id, with their loop (for cancel)
        self.running: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Task[None]]] = {}
        self.group_loops: dict[str, asyncio.AbstractEventLoop] = {}
        # Concurrency groups (as Ray's): each runs at most its number of calls at once, apart from the others
        groups = groups or {}
        self.group_of = _method_groups(type(instance), groups)
        self.semaphores: dict[str, asyncio.Semaphore] = {}
        self.pools: dict[str, ThreadPoolExecutor] = {}
        self.concurrent = is_async or max_concurrency > 1 or bool(groups)  # calls run on threads or an event loop
        if is_async:
            import asyncio  # only here: a worker that hosts no async actor starts ~15 ms sooner without it

            # Run by the worker's main thread, which also receives (WorkerRuntime._serve_async): a call
            # starts without a hand-over to another thread. (Made before the instance: see _create_actor.)
            self.loop = loop
            self.semaphore = asyncio.Semaphore(max_concurrency)
            self.semaphores = {name: asyncio.Semaphore(n) for name, n in groups.items()}
            # Each group's calls on a loop of its own, on a thread of its own (as Ray's): one that blocks its
            # loop (a time.sleep in a coroutine) holds up its group only.
            self.group_loops = {name: _loop_thread(f"nexus-actor-{name}") for name in groups}
        elif self.concurrent:
            self.pool = _pool(max_concurrency, "nexus-actor")
            self.pools = {name: _pool(n, f"nexus-actor-{name}") for name, n in groups.items()}

    def group(self, method: str) -> str | None:
        """The concurrency group a call of ``method`` runs in: the call's own (``method@group``, from
        ``.options(concurrency_group=)``), else its method's, else None (the default group)."""
        plain, at, group = method.partition("@")
        return group if at else self.group_of.get(plain)

    def semaphore_for(self, method: str) -> asyncio.Semaphore:
        group = self.group(method)
        found = self.semaphores[group] if group is not None else self.semaphore
        assert found is not None
        return found

    def loop_for(self, method: str) -> asyncio.AbstractEventLoop:
        group = self.group(method)
        found = self.group_loops[group] if group is not None else self.loop
        assert found is not None
        return found

    def pool_for(self, method: str) -> ThreadPoolExecutor:
        group = self.group(method)
        found = self.pools[group] if group is not None else self.pool
        assert found is not None
        return found


def _loop_thread(name: str) -> asyncio.AbstractEventLoop:
    import asyncio

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name=name, daemon=True).start()
    return loop


def _pool(threads: int, prefix: str) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix=prefix, initializer=_set_policy, initargs=(False,))


def _method_groups(cls: type, groups: dict[str, int]) -> dict[str, str]:
    """The concurrency group of each method that names one (``@nexus.method(concurrency_group=...)``)."""
    found = {}
    for name in dir(cls):
        options = getattr(getattr(cls, name, None), "__nexus_method__", None)
        group = options.get("concurrency_group") if isinstance(options, dict) else None
        if group is not None:
            if group not in groups:
                raise ValueError(f"{cls.__qualname__}.{name} runs in concurrency group {group!r}, which the actor does not have")
            found[name] = group
    return found


class ActorHosting(TaskExecution):
    """How a worker hosts its actor: its calls run as tasks do; a part of ``WorkerRuntime``, which sets these."""

    actor: _ActorHost | None
    busy_call: bool
    running_since: float

    def _create_actor(self, actor_id: int, cls_id: bytes, name: str, args_blob: Blob, deps: list[tuple[int, Blob]], options: dict) -> None:
        cls = self.defs.get(cls_id)
        try:
            if cls is None:
                raise NexusError(f"worker has no definition of {name}")
            args, kwargs = self._arguments(args_blob, deps)
            is_async = any(_is_async(getattr(cls, m, None)) for m in dir(cls) if not m.startswith("__"))
            loop = None
            if is_async:  # its loop is the current one in __init__ too (asyncio.get_event_loop() there: the
                import asyncio  # loop its calls of the default group run on, as Ray's)

                loop = asyncio.new_event_loop()
                asyncio.set_event_loop(loop)
            instance = cls(*args, **kwargs)
            concurrency = options.get("max_concurrency") or (1000 if is_async else 1)
            groups = options.get("concurrency_groups") or {}
            self.actor = _ActorHost(actor_id, instance, concurrency, loop, groups)
            sequential = self.actor.loop is None and self.actor.pool is None
            # (with groups the head holds no call back: calls of one group must not wait behind another's)
            self.send(("actor_ready", actor_id, None, sequential, concurrency if not groups else 1 << 20))
        except _DependencyFailed as failed:
            self.send(("actor_ready", actor_id, failed.blob))
        except BaseException as exc:
            if isinstance(exc, SystemExit):
                self._exit_for_user_code(exc, f"the constructor of {name}")
            self.send(("actor_ready", actor_id, error_blob(exc, self.where)))

    def _call(
        self,
        actor_id: int,
        call_id: int,
        method: str,
        args_blob: Blob,
        deps: list[tuple[int, Blob]],
        result_ids: list[int],
        trace: int = 0,
    ) -> None:
        host = self.actor
        if host is None or host.actor_id != actor_id or call_id in self.cancelled:
            if call_id in self.cancelled:  # (nexus.cancel before it began: it never runs)
                self.cancelled.discard(call_id)
                failure: Exception = TaskCancelledError(f"the call {method} was cancelled before it ran (nexus.cancel)")
            else:
                failure = NexusError(f"actor {actor_id:x} does not live in {self.where}")
            blob = error_blob(failure, self.where)
            if result_ids:
                self.send(("done", call_id, [(oid, blob) for oid in result_ids], None))
            return
        context = (trace or call_id, call_id)
        plain, at, group = method.partition("@")  # (a call's own concurrency group: see _ActorHost.group)
        cls_name = type(host.instance).__qualname__
        bound = getattr(host.instance, plain, None)
        name = f"{cls_name}.{plain}"
        if bound is None:
            bound = _BUILT_IN[plain] if plain in _BUILT_IN else _missing(cls_name, plain)
        if at and group not in host.pools and group not in host.group_loops:
            bound, method = _no_group(cls_name, group), plain
        yields = method_yields(type(host.instance), plain)
        if host.loop is not None:
            self._call_async(host, bound, name, call_id, args_blob, deps, result_ids, context, method, yields)
        elif host.pool is not None:
            host.pool_for(method).submit(self._finish_call, bound, name, call_id, args_blob, deps, result_ids, None, context, yields)
        else:
            self.busy_call = True
            try:
                start = self.running_since = time.perf_counter()
                self._finish_call(bound, name, call_id, args_blob, deps, result_ids, (method, start), context, yields)
            finally:
                self.busy_call = False
                self.running_since = 0.0

    def _finish_call(
        self,
        bound: Any,
        name: str,
        call_id: int,
        args_blob: Blob,
        deps: list,
        result_ids: list[int],
        timed: Any = None,
        context: tuple[int, int] = (0, 0),
        yields: Any = None,
    ) -> None:
        token = _trace_context.set(context)
        if call_id in self.cancelled:  # (cancelled while it waited for a thread: it never runs)
            bound = _cancelled(name)
        try:
            items, _value, timing = self._outcome(bound, name, args_blob, deps, result_ids or [0], yields)
        finally:
            _trace_context.reset(token)
            self.cancelled.discard(call_id)
        if result_ids:
            if timed is not None:  # a sequential actor's call, on the main thread: (method, start)
                self.answers.answer(call_id, items, timed[0], time.perf_counter() - timed[1], timing)
            else:
                self.send(("done", call_id, items, timing))
        elif items[0][1].error:
            print(f"nexus {self.where}: {name} (a tell) failed:\n{deserialize(items[0][1]).traceback_text}", file=sys.stderr)

    def _call_async(
        self,
        host: _ActorHost,
        bound: Any,
        name: str,
        call_id: int,
        args_blob: Blob,
        deps: list,
        result_ids: list[int],
        context: tuple[int, int] = (0, 0),
        method: str = "",
        yields: Any = None,
    ) -> None:
        loop = host.loop_for(method)

        async def run() -> None:
            import asyncio

            limit = host.semaphore_for(method)
            _trace_context.set(context)  # this coroutine's own context
            start = ready = ran = _now()
            ok = False
            async with limit:
                current = asyncio.current_task()
                if current is not None:
                    host.running[call_id] = (loop, current)
                try:
                    args, kwargs = self._arguments(args_blob, deps)
                    call_yields = kwargs.pop(YIELDS_KWARG) if kwargs and YIELDS_KWARG in kwargs else yields
                    ready = _now()
                    value = (_cancelled(name) if call_id in self.cancelled else bound)(*args, **kwargs)
                    if inspect.isawaitable(value):
                        value = await value
                    if call_yields is not None or is_generator(value):  # (values yielded: see worker.yields)
                        value = await drain_async(self, value, call_yields, result_ids or [0], name)
                    ran = _now()
                    if isinstance(value, Partial):  # (a generator that failed after some of its values)
                        items = value.results(self.where, result_ids or [0], name)
                    else:
                        items = self._results(value, result_ids or [0], name)
                        ok = True
                except _DependencyFailed as failed:
                    items = [(oid, failed.blob) for oid in result_ids or [0]]
                except BaseException as exc:
                    if isinstance(exc, SystemExit):
                        self._exit_for_user_code(exc, name)
                    if isinstance(exc, asyncio.CancelledError) and call_id in self.cancelled:  # (nexus.cancel, as Ray's)
                        exc = TaskCancelledError(f"the call {name} was cancelled while it ran (nexus.cancel)")
                    blob = error_blob(exc, self.where, user=not isinstance(exc, _NOT_THE_USERS))
                    items = [(oid, blob) for oid in result_ids or [0]]
                finally:
                    host.running.pop(call_id, None)
            self.cancelled.discard(call_id)
            if result_ids:
                self.send(("done", call_id, items, (start, ready, max(ran, ready), _now(), ok)))
            elif not ok and items[0][1].error:
                print(f"nexus {self.where}: {name} (a tell) failed:\n{deserialize(items[0][1]).traceback_text}", file=sys.stderr)

        # Started in the order they came, whichever thread received them: each as a callback of the loop (the
        # monitor's, received for a main thread blocked in a call, from its thread), which makes the task then.
        # (A task made at once would start before the callbacks queued earlier had made theirs.)
        if threading.get_ident() == self.main_ident and loop is host.loop:
            loop.call_soon(loop.create_task, run())
        else:
            loop.call_soon_threadsafe(loop.create_task, run())


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)


def _cancelled(name: str) -> Any:
    def cancelled(*_args: Any, **_kwargs: Any) -> Any:
        raise TaskCancelledError(f"the call {name} was cancelled before it ran (nexus.cancel)")

    return cancelled


def _ready() -> bool:
    return True


def _terminate() -> None:
    from .actor_exit import exit_actor

    exit_actor()


# What every actor answers, as Ray's do: ``__ray_ready__`` (True once it is made), ``__ray_terminate__`` (it
# ends, after the calls before this one: its ``__ray_shutdown__`` runs, the calls after it fail).
_BUILT_IN = {"__ray_ready__": _ready, "__ray_terminate__": _terminate}


def _no_group(cls_name: str, group: str) -> Any:
    def no_group(*_args: Any, **_kwargs: Any) -> Any:
        raise ValueError(f"actor class {cls_name} has no concurrency group {group!r} (concurrency_groups= names its groups)")

    return no_group


def _missing(cls_name: str, method: str) -> Any:
    def missing(*_args: Any, **_kwargs: Any) -> Any:
        raise AttributeError(f"actor class {cls_name} has no method {method!r}")

    return missing
