"""``nexus.init(local_mode=True)``: everything runs in the driver's own process, one call at a time (as Ray's
local mode, for debugging: breakpoints and prints in tasks and actors work as in plain Python).

A task runs when it is submitted (``.remote()``), on the caller's thread,
with its arguments' ObjectRefs resolved as in a cluster; its result (or its
error) is stored, serialized, as a cluster's would be, and ``get`` returns
it. An actor is an instance in this process; each call runs at once, in
order. Nothing runs in parallel, no worker process starts, values are kept
until ``shutdown``; the state API and the views have no cluster to show.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import os
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ..core.errors import ActorDiedError, NexusError
from ..core.event_stream import EventStream
from .generators import DYNAMIC, YIELDS_KWARG, DynamicObjectRefGenerator, method_yields
from .values import Blob, ObjectRef, deserialize, error_blob, serialize

__all__ = ["LocalSession"]

_WHERE = "local mode (the driver's process)"


class LocalSession:
    """A cluster of one process: the driver runs what it submits (see the module's docstring)."""

    def __init__(self, num_cpus: int, namespace: str, resources: dict[str, float] | None) -> None:
        self.num_cpus, self.namespace = num_cpus, namespace
        self.resources = {"CPU": float(num_cpus), **(resources or {})}
        self.new_id: Callable[[], int] = itertools.count(1).__next__
        self.objects: dict[int, Blob] = {}
        self.actors: dict[int, Any] = {}  # id -> instance
        self.dead: dict[int, str] = {}  # id -> why
        self.named: dict[tuple[str, str], int] = {}
        self.classes: dict[int, str] = {}
        self.handles: dict[int, Any] = {}  # what the handle that made each actor knew (for get_actor)
        self.lock = threading.RLock()  # (the tables, from any thread the user starts; never held while user code runs)
        self.loops: dict[int, asyncio.AbstractEventLoop] = {}  # an async actor's event loop, on a thread of its own
        self.events = EventStream()
        self.streams: dict[int, list[int]] = {}  # a streaming call's values, by its task ref

    # -- running ----------------------------------------------------------------------------------

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, ObjectRef):
            blob = self.objects.get(value.id)
            if blob is None:
                raise NexusError(f"object {value.hex()} is not in this local-mode session")
            found = deserialize(blob)
            if blob.error:
                raise found.to_exception()
            return found
        return value

    def _store(self, value: Any, num_returns: int, what: str) -> list[ObjectRef]:
        ids = [self.new_id() for _ in range(num_returns)]
        if num_returns == 1:
            values = [value]
        elif isinstance(value, (tuple, list)) and len(value) == num_returns:
            values = list(value)
        else:
            failure = ValueError(f"{what} returned {type(value).__name__}, not {num_returns} values (num_returns={num_returns})")
            return self._fail(ids, failure)
        for oid, item in zip(ids, values, strict=True):
            self.objects[oid] = serialize(item, f"the result of {what}", inline=True)
        return [ObjectRef(oid, counted=False) for oid in ids]

    def _fail(self, ids: list[int], exc: BaseException, user: bool = False) -> list[ObjectRef]:
        blob = error_blob(exc, _WHERE, user=user)
        for oid in ids:
            self.objects[oid] = blob
        return [ObjectRef(oid, counted=False) for oid in ids]

    def _run(
        self, fn: Callable[..., Any], args: tuple, kwargs: dict, num_returns: int, what: str, loop: Any = None, yields: Any = None
    ) -> list[ObjectRef]:
        """Run ``fn`` now, on this thread (not under the session's lock: it may call into the session, or wait for
        another thread's call); an async actor's coroutine on its own loop."""
        if YIELDS_KWARG in kwargs:  # (a call's own num_returns for a generator method)
            kwargs = dict(kwargs)
            yields = kwargs.pop(YIELDS_KWARG)
        try:
            args = tuple(self._resolve(a) for a in args)
            kwargs = {k: self._resolve(v) for k, v in kwargs.items()}
        except Exception as exc:  # (an argument's task failed: so does this one, with its error)
            return self._fail([self.new_id() for _ in range(num_returns)], exc)
        try:
            value = fn(*args, **kwargs)
            if inspect.isawaitable(value):
                value = asyncio.run_coroutine_threadsafe(_awaited(value), loop).result() if loop else _run_coroutine(value)
            if yields is not None or inspect.isgenerator(value) or inspect.isasyncgen(value):
                return self._generated(value, yields, num_returns, what, loop)
        except Exception as exc:
            return self._fail([self.new_id() for _ in range(num_returns)], exc, user=True)
        with self.lock:
            return self._store(value, num_returns, what)

    def _generated(self, value: Any, yields: Any, num_returns: int, what: str, loop: Any) -> list[ObjectRef]:
        """A generator's values, all made now: as a stream for ``stream_next``, a dynamic call's refs, or results."""
        if inspect.isasyncgen(value):
            gathered = _gathered(value)
            items, failure = asyncio.run_coroutine_threadsafe(gathered, loop).result() if loop else _run_coroutine(gathered)
        elif inspect.isgenerator(value):
            items, failure = _gathered_sync(value)
        else:
            raise TypeError(f"{what} has num_returns={yields[0]!r} but returned {type(value).__name__}, not a generator")
        if failure is not None and (yields is None or yields[0] == DYNAMIC):
            return self._fail([self.new_id() for _ in range(num_returns)], failure, user=True)
        if yields is None:
            if num_returns == 1 and len(items) != 1:
                return self._fail([self.new_id()], ValueError(f"{what} has num_returns=1 but yielded {len(items)} values"))
            with self.lock:
                return self._store(items[0] if num_returns == 1 else items, num_returns, what)
        refs = [self.put(item) for item in items]
        if yields[0] == DYNAMIC:
            with self.lock:
                return self._store(DynamicObjectRefGenerator(refs), 1, what)
        with self.lock:
            task = self.new_id()
            self.objects[task] = error_blob(failure, _WHERE, user=True) if failure else serialize(None, "", inline=True)
            self.streams[task] = [ref.id for ref in refs]
        return [ObjectRef(task, counted=False)]

    def submit_task(
        self, fn_id: bytes, factory: Callable[[], Blob], name: str, args: tuple, kwargs: dict, num_returns: int, options: dict
    ) -> list[ObjectRef]:
        return self._run(_original(factory), args, kwargs, num_returns, name, yields=options.get("_yields"))

    def create_actor(self, cls_id: bytes, factory: Callable[[], Blob], name: str, args: tuple, kwargs: dict, options: dict) -> int:
        actor_id = self.new_id()
        wanted = options.get("name")
        with self.lock:
            key = (options.get("namespace") or self.namespace, wanted) if wanted else None
            if key is not None and key in self.named and self.named[key] not in self.dead:
                raise ValueError(f"an actor named {wanted!r} already exists in namespace {key[0]!r}; use get_if_exists=True or get_actor")
            cls = _original(factory)  # (one too large to ship is refused, as in a cluster)
            try:
                args = tuple(self._resolve(a) for a in args)
                kwargs = {k: self._resolve(v) for k, v in kwargs.items()}
                self.actors[actor_id] = cls(*args, **kwargs)
                if any(_is_async(getattr(cls, m, None)) for m in dir(cls) if not m.startswith("__")):
                    self.loops[actor_id] = _loop_thread()  # (one loop for its life: what it keeps is bound to it)
            except Exception as exc:  # (its calls fail with this, as a cluster's do)
                self.dead[actor_id] = f"actor {name} failed in its constructor: {type(exc).__name__}: {exc}"
            self.classes[actor_id] = name
            self.handles[actor_id] = options.get("_handle")
            if key is not None:
                self.named[key] = actor_id
        return actor_id

    def submit_call(
        self, actor_id: int, method: str, args: tuple, kwargs: dict, num_returns: int, tell: bool, bounded: bool = False
    ) -> list[ObjectRef]:
        method = method.partition("@")[0]  # (a call's own concurrency group: one thread runs them all here)
        what = f"{self.classes.get(actor_id, 'actor')}.{method}"
        instance = self.actors.get(actor_id)
        if instance is None:
            why = self.dead.get(actor_id, f"actor {actor_id:x} is unknown to this local-mode session")
            return self._fail([self.new_id() for _ in range(num_returns)], ActorDiedError(why))
        if method == "__ray_ready__":
            return self._store(True, 1, what)
        if method == "__ray_terminate__":
            self.kill(actor_id, True)
            return self._store(None, 1, what)
        bound = getattr(instance, method, None)
        if bound is None:
            return self._fail([self.new_id() for _ in range(num_returns)], AttributeError(f"{what} does not exist"))
        return self._run(bound, args, kwargs, num_returns, what, self.loops.get(actor_id), method_yields(type(instance), method))

    # -- values ----------------------------------------------------------------------------------

    def put(self, value: Any) -> ObjectRef:
        with self.lock:
            oid = self.new_id()
            self.objects[oid] = serialize(value, "a value put", inline=True)
            return ObjectRef(oid, counted=False)

    def get_blobs(self, ids: Sequence[int], timeout: float | None) -> list[Blob] | None:
        missing = [oid for oid in ids if oid not in self.objects]
        if missing:
            raise NexusError(f"object {missing[0]:x} is not in this local-mode session (made in another, or freed)")
        return [self.objects[oid] for oid in ids]

    def wait_ids(self, ids: Sequence[int], num_returns: int, timeout: float | None) -> list[int]:
        return [oid for oid in ids if oid in self.objects][:num_returns]  # (every value is there once submitted)

    def cancel(self, oid: int, force: bool, recursive: bool = True) -> bool:
        return False  # (it ran when it was submitted)

    def kill(self, actor_id: int, no_restart: bool) -> None:
        with self.lock:
            if self.actors.pop(actor_id, None) is not None:
                self.dead[actor_id] = f"actor {self.classes.get(actor_id, '')} {actor_id:x} was killed with nexus.kill"
            loop = self.loops.pop(actor_id, None)
        if loop is not None:
            _stop(loop)

    def get_actor(self, name: str, namespace: str | None) -> tuple[int, str, bool]:
        actor_id = self.named.get((namespace or self.namespace, name))
        if actor_id is None or actor_id in self.dead:
            raise ValueError(f"no actor named {name!r} in namespace {namespace or self.namespace!r}")
        return actor_id, self.classes[actor_id], False

    # -- the rest of a session ---------------------------------------------------------------------

    def nodes(self) -> list[dict[str, Any]]:
        here = socket.gethostname()
        return [
            {
                "NodeID": "000000",
                "Alive": True,
                "State": "ALIVE",
                "NodeManagerAddress": "127.0.0.1",
                "NodeManagerHostname": here,
                "NodeName": here,
                "Resources": dict(self.resources),
                "Labels": {},
                "Workers": 0,
                "alive": True,
            }
        ]

    def cluster_resources(self, available: bool) -> dict[str, float]:
        return dict(self.resources)

    def control(self, op: str, *args: Any) -> Any:
        if op == "stream_next":  # (see head.streams: here every value was made when the call was)
            task, index = args
            made = self.streams.get(task, [])
            if index < len(made):
                return ("item", made[index])
            blob = self.objects.get(task)
            return ("item", task) if blob is not None and blob.error and index == len(made) else ("end", 0)
        if op == "state" and args and args[0] == "handle":
            return self.handles.get(args[1])
        if op == "state" and args and args[0] == "context":
            return {"job_id": "000000", "node_id": "000000", "resources": {}, "namespace": self.namespace, "restarts": 0}
        raise RuntimeError(f"local mode has no cluster to ask for {op!r}: the state API and the views need nexus.init()")

    def event_stream(self) -> EventStream:
        return self.events

    def driver(self) -> Any:
        return None

    def info(self) -> dict[str, Any]:
        return {"workers": 0, "num_cpus": self.num_cpus, "transport": "local", "namespace": self.namespace, "pid": os.getpid()}

    def shutdown(self) -> bool:
        with self.lock:
            self.objects.clear()
            self.actors.clear()
            loops, self.loops = list(self.loops.values()), {}
        for loop in loops:
            _stop(loop)
        return True


def _original(factory: Callable[[], Blob]) -> Any:
    """The function or class itself (a definition's factory keeps it); else what it ships, loaded again."""
    blob = factory()  # (made once: a definition too large for a cluster is refused here too, as Ray's local mode does)
    found = getattr(factory, "original", None)
    return found if found is not None else deserialize(blob)


def _loop_thread() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()

    def run() -> None:
        try:
            loop.run_forever()
        finally:
            loop.close()

    threading.Thread(target=run, name="nexus-local-mode-loop", daemon=True).start()
    return loop


def _stop(loop: asyncio.AbstractEventLoop) -> None:
    done = threading.Event()

    def stop() -> None:
        loop.stop()
        done.set()

    loop.call_soon_threadsafe(stop)
    done.wait(5)


def _run_coroutine(awaitable: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_awaited(awaitable))
    result: list[Any] = []  # (a notebook's loop is running: on a thread of its own)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(asyncio.run(_awaited(awaitable)))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="nexus-local-mode")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _gathered_sync(generator: Any) -> tuple[list[Any], Exception | None]:
    items: list[Any] = []
    try:
        for item in generator:
            items.append(item)
    except Exception as exc:  # (the values before it are the stream's, then the error)
        return items, exc
    return items, None


async def _gathered(generator: Any) -> tuple[list[Any], Exception | None]:
    items: list[Any] = []
    try:
        async for item in generator:
            items.append(item)
    except Exception as exc:
        return items, exc
    return items, None


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
