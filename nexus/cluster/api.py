"""The Ray-style face of the local cluster: ``init``, ``remote``, ``get``, ``wait``, ``put`` and friends.

The names and their behaviour follow Ray's where Ray has them, so Ray
programs carry over: ``@nexus.remote`` on a function or class, ``.remote()``
to call it, ``.options(...)`` to change options per call, ``nexus.get`` /
``nexus.wait`` on the ObjectRefs that come back. Besides ``.remote()`` (an
ask: returns an ObjectRef), every actor method offers ``.tell()``: fire and
forget, no ref is made, ordered with the caller's other calls to that actor.

The same functions work inside a task or an actor method (nested tasks,
actors creating actors, ``get`` inside a task).
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import inspect
import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..core.errors import (
    ActorDiedError,
    GetTimeoutError,
    ObjectLostError,
    PendingCallsLimitExceededError,
    TaskCancelledError,
    WorkerCrashedError,
)
from . import session as _session
from .actor_handles import ActorClass, ActorHandle, ActorMethod  # noqa: F401  (ActorMethod: its name here, as before)
from .config import ClusterConfig
from .definitions import TASK_OPTIONS, _check_options, _Definition, _runtime, _with_options
from .generators import STREAMING, ObjectRefGenerator, generator_call
from .signatures import ArgumentCheck
from .values import Blob, ObjectRef, deserialize

if TYPE_CHECKING:
    from .settings import Settings
    from .transport import Transport

__all__ = [
    "ActorClass",
    "ActorDiedError",
    "ActorHandle",
    "GetTimeoutError",
    "ObjectLostError",
    "ObjectRef",
    "PendingCallsLimitExceededError",
    "RemoteFunction",
    "TaskCancelledError",
    "WorkerCrashedError",
    "available_resources",
    "cancel",
    "cluster_resources",
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
    "wait",
]

_init_lock = threading.Lock()
_exit_hook = False


# -- init / shutdown ---------------------------------------------------------------------


class ClusterInfo(dict):  # type: ignore[type-arg]
    """What ``init`` returns: a mapping of facts, shown as a compact summary in a notebook."""

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>" for k, v in self.items())
        what = "attached to the cluster at " + str(self["address"]) if "attached_as" in self else "local cluster"
        return f"<table><caption>Nexus {what}</caption>{rows}</table>"

    def __repr__(self) -> str:
        return "NexusCluster(" + ", ".join(f"{k}={v!r}" for k, v in self.items()) + ")"


def init(
    num_cpus: int | None = None,
    num_gpus: float | None = None,
    address: str | None = None,
    namespace: str | None = None,
    ignore_reinit_error: bool = False,
    object_store_memory: int | None = None,
    resources: dict[str, float] | None = None,
    transport: str | Transport | None = None,
    observe: bool | None = None,
    _system_config: ClusterConfig | dict[str, Any] | None = None,
    key: str | None = None,
    config: str | os.PathLike[str] | Settings | None = None,
    local_mode: bool = False,
    **_unused: Any,
) -> ClusterInfo:
    """Start a local cluster: this process becomes the driver, ``num_cpus`` worker processes run tasks;
    ``num_gpus`` (0 unless given: none are looked for) is the cluster's ``GPU`` resource, which tasks and actors
    ask for with ``num_gpus=``.

    ``transport`` picks the channel between the driver and its workers:
    ``"shm"`` (shared-memory rings, the default), ``"zmq"`` or ``"zmq+ipc"``
    (ZeroMQ over a Unix socket in a private folder), ``"zmq+tcp"`` (ZeroMQ
    over TCP on 127.0.0.1), each ZeroMQ channel authenticated and encrypted
    with CURVE; another installed plugin by name, or a ``Transport``
    instance. Also from ``NEXUS_TRANSPORT``. ``observe=False`` records no events for
    :mod:`nexus.observe` (timelines, metrics, the state API's task history). ``address="HOST:PORT"`` attaches this process
    to a running cluster as a driver (``"auto"``: the head ``nexus start --head`` started on this host), with the
    head's ``node.key`` file as ``key`` (default: ``$NEXUS_KEY``, else the key of the head started here); the
    other arguments are the cluster's, not this process's, then. ``_system_config`` (as in Ray: internal
    tunables, for tests and experiments) is a :class:`~nexus.cluster.config.ClusterConfig` or a dict of its fields.
    ``config``: a ``nexus.toml`` (:mod:`nexus.cluster.settings`; default ``$NEXUS_CONFIG``, else ``./nexus.toml`` if
    there is one) or its Settings: its ``[cluster]`` gives what is not passed here, its ``[tuning]`` the tunables.
    ``local_mode=True`` (as Ray's, for debugging): no worker process; tasks and actors run in this one, each
    when it is called (:mod:`nexus.cluster.local_mode`).
    """
    from .head.runtime import Runtime

    lifetime = _unused.pop("_default_actor_lifetime", None)  # (as Ray's: the lifetime of actors that give none)
    memory = _unused.pop("_memory", None)  # (as Ray's: the bytes of the memory resource; default from the RAM)
    if _unused:
        raise TypeError(f"init() got unexpected keyword argument(s): {', '.join(sorted(_unused))}")
    if lifetime not in (None, "detached", "non_detached", "non-detached"):
        raise ValueError(f"_default_actor_lifetime is 'detached' or 'non_detached', not {lifetime!r}")
    with _init_lock:
        current = _session.current()
        if current is not None:
            if ignore_reinit_error:
                return ClusterInfo(current.info())
            raise RuntimeError("nexus.init() was already called; call nexus.shutdown() first, or pass ignore_reinit_error=True")
        if address not in (None, "local"):
            if local_mode:
                raise ValueError("local_mode runs everything in this process: it takes no address of a cluster")
            from .remote.driver import attach

            session = attach(address, key)
            _session.set_current(session)
            _register_exit_hook()
            return ClusterInfo(session.info())
        if config is not None or os.environ.get("NEXUS_CONFIG") or os.path.isfile("nexus.toml"):
            from .settings import init_arguments

            given: dict[str, Any] = {"num_cpus": num_cpus, "namespace": namespace, "object_store_memory": object_store_memory}
            given.update(resources=resources, transport=transport, observe=observe)
            chosen, _system_config = init_arguments(config, given, _system_config)
            num_cpus, namespace, object_store_memory = chosen["num_cpus"], chosen["namespace"], chosen["object_store_memory"]
            resources, transport, observe = chosen["resources"], chosen["transport"], chosen["observe"]
        if num_cpus is None:
            num_cpus = os.cpu_count() or 1
        if not isinstance(num_cpus, int) or isinstance(num_cpus, bool) or num_cpus < 0:  # (0: a driver that only puts and gets)
            raise ValueError(f"num_cpus must be an int of 0 or more, not {num_cpus!r}")
        if resources is not None and (not isinstance(resources, dict) or "CPU" in resources):
            raise ValueError("resources is a dict of resource names (such as 'GPU') to amounts; set CPUs with num_cpus")
        if num_gpus is not None:
            if isinstance(num_gpus, bool) or not isinstance(num_gpus, (int, float)) or num_gpus < 0:
                raise ValueError(f"num_gpus is a number of GPUs, 0 or more, not {num_gpus!r}")
            if resources is not None and "GPU" in resources:
                raise ValueError("give the GPUs as num_gpus or as resources['GPU'], not both")
            resources = {**(resources or {}), **({"GPU": float(num_gpus)} if num_gpus else {})}
        resources = _with_memory(resources, memory, object_store_memory)
        if local_mode:
            from .local_mode import LocalSession

            local = LocalSession(num_cpus, namespace or "default", resources)
            _session.set_current(local)
            return ClusterInfo(local.info())
        tunables = _system_config
        if not isinstance(tunables, ClusterConfig):
            tunables = ClusterConfig.from_environment(tunables, os.environ)
        if lifetime is not None:
            tunables = dataclasses.replace(tunables, default_actor_lifetime=lifetime.replace("-", "_"))
        runtime = Runtime(
            num_cpus,
            transport or os.environ.get("NEXUS_TRANSPORT", "shm"),
            namespace or "default",
            resources=resources,
            object_store_memory=object_store_memory,
            observe=observe is not False,
            config=tunables,
        )
        _session.set_current(runtime)
        _register_exit_hook()
        return ClusterInfo(runtime.info())


def _with_memory(resources: dict[str, float] | None, memory: Any, store: Any) -> dict[str, float]:
    """``resources`` with the node's ``memory`` (what tasks and actors reserve with ``memory=``, as in Ray)."""
    if memory is not None and (isinstance(memory, bool) or not isinstance(memory, (int, float)) or memory < 0):
        raise ValueError(f"_memory is a number of bytes, 0 or more, not {memory!r}")
    if memory is None:
        if resources and "memory" in resources:
            return resources
        from .store import default_memory

        memory = default_memory(store if isinstance(store, (int, float)) else None)
    return {**(resources or {}), "memory": float(memory)}


_session.starter = init  # (what a first call without a cluster starts: see session.current_or_start)


def _register_exit_hook() -> None:
    global _exit_hook
    if not _exit_hook:  # a kernel or script that ends without shutdown(): stop the workers, free the memory
        atexit.register(shutdown)
        _exit_hook = True


def shutdown() -> None:
    """Stop every worker and free every shared-memory segment of the cluster; a no-op without one."""
    with _init_lock:
        runtime = _session.current()
        if runtime is None:
            return
        try:
            owned = runtime.shutdown()  # False in a worker: the cluster is its driver's to stop
        except BaseException:
            _session.set_current(None)
            raise
        if owned:
            _session.set_current(None)


def is_initialized() -> bool:
    return _session.current() is not None


# -- get / wait / put ----------------------------------------------------------------------


def _raise_or_value(blob: Blob) -> Any:
    value = deserialize(blob)
    if blob.error:
        raise value.to_exception()
    return value


def get(refs: ObjectRef | Sequence[ObjectRef], *, timeout: float | None = None) -> Any:
    """The value(s) behind ``refs``; raises the task's own exception if it failed, GetTimeoutError after ``timeout``."""
    runtime = _runtime()
    if isinstance(refs, ObjectRef):  # the common case, kept short (a get of a small object takes ~2 us)
        blobs = runtime.get_blobs((refs.id,), timeout)
        if blobs is None:
            raise GetTimeoutError(f"get timed out after {timeout} s")
        return _raise_or_value(blobs[0])
    if not isinstance(refs, (list, tuple)):
        raise TypeError(f"nexus.get takes an ObjectRef or a list of ObjectRefs, not {_described(refs)}")
    for ref in refs:
        if not isinstance(ref, ObjectRef):
            raise TypeError(f"nexus.get takes an ObjectRef or a list of ObjectRefs; the list holds {_described(ref)}")
    blobs = runtime.get_blobs([r.id for r in refs], timeout)
    if blobs is None:
        raise GetTimeoutError(f"get timed out after {timeout} s")
    return [_raise_or_value(blob) for blob in blobs]


def wait(
    refs: Sequence[ObjectRef], *, num_returns: int = 1, timeout: float | None = None, fetch_local: bool = True
) -> tuple[list[ObjectRef], list[ObjectRef]]:
    """Split ``refs`` into (ready, not ready) once ``num_returns`` are ready or ``timeout`` passed; keeps their order."""
    runtime = _runtime()
    if not isinstance(refs, (list, tuple)):
        raise TypeError(f"nexus.wait takes a list of ObjectRefs, not {_described(refs)}")
    refs = list(refs)
    if not refs:  # (nothing to wait for, whatever num_returns says: as Ray's)
        return [], []
    for ref in refs:
        if not isinstance(ref, ObjectRef):
            raise TypeError(f"nexus.wait takes a list of ObjectRefs; the list holds {_described(ref)}")
    if len(set(refs)) != len(refs):
        raise ValueError("nexus.wait got the same ObjectRef twice")
    if not 0 <= num_returns <= len(refs):
        raise ValueError(f"num_returns must be between 0 and {len(refs)}, not {num_returns}")
    ready_ids = set(runtime.wait_ids([r.id for r in refs], num_returns, timeout))
    ready = [r for r in refs if r.id in ready_ids]
    if len(ready) > num_returns:
        extra = {r.id for r in ready[num_returns:]}
        ready = ready[:num_returns]
    else:
        extra = set()
    return ready, [r for r in refs if r.id not in ready_ids or r.id in extra]


def _described(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__qualname__} {text if len(text) <= 60 else text[:57] + '...'}"


def put(value: Any) -> ObjectRef:
    """Store ``value`` in the cluster; the ObjectRef can be passed to tasks and actors."""
    if isinstance(value, ObjectRef):
        raise TypeError("nexus.put of an ObjectRef: pass the ref itself instead")
    return _runtime().put(value)


def cancel(ref: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    """Cancel the task that makes ``ref``; ``get`` then raises TaskCancelledError.

    A queued task is dropped; a running one gets TaskCancelledError raised
    in it (a blocking call such as ``time.sleep`` is interrupted), or with
    ``force=True`` its worker process is killed and replaced. With
    ``recursive`` (the default, as Ray's) the tasks it submitted are
    cancelled too, and theirs.
    """
    if isinstance(ref, ObjectRefGenerator):  # (its task: the generator stops where it is)
        ref = ref.completed()
    if not isinstance(ref, ObjectRef):
        raise TypeError(f"nexus.cancel takes an ObjectRef, not {_described(ref)}")
    _runtime().cancel(ref.id, force, recursive)


def event_stream() -> Any:
    """The cluster's event stream: subscribe to :mod:`nexus.cluster.events` classes (workers, restarts, retries)."""
    return _runtime().event_stream()


def kill(actor: ActorHandle, *, no_restart: bool = True) -> None:
    """Stop an actor at once; calls to it then raise ActorDiedError.

    With ``no_restart=False`` its process is killed as if it had crashed: an
    actor with ``max_restarts`` left starts again.
    """
    if not isinstance(actor, ActorHandle):
        raise TypeError(f"nexus.kill takes an actor handle, not {type(actor).__qualname__}")
    _runtime().kill(actor._actor_id, no_restart)


def get_actor(name: str, namespace: str | None = None) -> Any:
    """The handle of the named actor (``"device:<key>/<name>"``: a device's, through its bridge); ValueError when there is none."""
    if name.startswith("device:"):
        from .devices import bridge_names, resolve

        found = [get_actor(n) for n in bridge_names((_runtime().driver() or _runtime()).control("state", "actors"))]
        return resolve(name, found, lambda bridge: get(bridge.describe.remote(), timeout=30))
    session = _runtime()
    actor_id, cls_name, bounded = session.get_actor(name, namespace)
    try:  # (its methods, their argument checks and num_returns, as the handle that made it has them)
        methods, checks, returns = (session.driver() or session).control("state", "handle", actor_id) or (None, None, None)
    except (ValueError, RuntimeError):
        methods = checks = returns = None
    return ActorHandle(actor_id, cls_name, methods, checks, bounded, returns)


def nodes() -> list[dict[str, Any]]:
    """The nodes of the cluster, as ``ray.nodes()`` gives them: ``NodeID``, ``Alive``, ``NodeManagerAddress``,
    ``NodeManagerHostname``, ``Resources``, ``Labels`` (a one-host cluster has one: this host)."""
    return _runtime().nodes()


def cluster_resources() -> dict[str, float]:
    """What the cluster has in all, by resource name (``ray.cluster_resources()``)."""
    return _runtime().cluster_resources(False)


def available_resources() -> dict[str, float]:
    """What no running task or actor holds now, by resource name; a resource with none free is left out
    (``ray.available_resources()``)."""
    return _runtime().cluster_resources(True)


# -- remote functions ---------------------------------------------------------------------------


class RemoteFunction:
    """A function decorated with ``@nexus.remote``: call it with ``.remote(...)``."""

    def __init__(self, fn: Callable[..., Any], options: dict[str, Any]) -> None:
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):  # (as Ray: a task is not a coroutine)
            raise ValueError(
                f"'async def' is for actor methods, not tasks: make {fn.__qualname__} a plain function (asyncio.run inside)"
                " or a method of an actor"
            )
        self._function = fn
        self._options = _check_options(dict(options), TASK_OPTIONS, f"remote function {fn.__qualname__}")
        self._name = fn.__qualname__
        self._def = _Definition(fn)  # shared by every copy .options() makes
        self._check = ArgumentCheck.of(fn, self._name)
        self._generator = inspect.isgeneratorfunction(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"remote function {self._name} cannot be called directly; use {self._name}.remote(...)")

    def __getstate__(self) -> dict[str, Any]:
        return {"fn": self._function, "options": self._options, "id": self._def.id, "check": self._check}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._function = state["fn"]
        self._options = state["options"]
        self._name = self._function.__qualname__
        self._def = _Definition(self._function, state["id"], _session.current())
        self._check = state.get("check")
        self._generator = inspect.isgeneratorfunction(self._function)

    def options(self, **options: Any) -> RemoteFunction:
        return _with_options(self, options, TASK_OPTIONS, f"remote function {self._name}")

    def _remote(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """``f._remote(args=[...], kwargs={...}, **options)``: ``f.options(**options).remote(*args, **kwargs)`` (as Ray's)."""
        target = self.options(**options) if options else self
        return target.remote(*(args or ()), **(kwargs or {}))

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        runtime = _runtime()
        if self._check is not None:
            self._check(args, kwargs)
        d = self._def
        fn_id = d.id if d.session is runtime else d.id_in(runtime)
        num_returns = self._options.get("num_returns")
        if num_returns is None:
            num_returns = STREAMING if self._generator else 1
        name = self._options.get("name") or self._name  # (the task's name in the state API and its errors, as Ray's)
        if type(num_returns) is not int:  # a generator's values, as they come or all at once
            return generator_call(runtime, fn_id, d.factory, name, self._function, args, kwargs, self._options)
        if num_returns == 0:  # (as Ray's: it runs, and what it returns is dropped)
            runtime.submit_task(fn_id, d.factory, name, args, kwargs, 1, self._options)
            return None
        refs = runtime.submit_task(fn_id, d.factory, name, args, kwargs, num_returns, self._options)
        return refs[0] if num_returns == 1 else refs


def remote(*args: Any, **options: Any) -> Any:
    """``@nexus.remote`` or ``@nexus.remote(**options)`` on a function (a task) or a class (an actor)."""
    if len(args) == 1 and not options and (inspect.isfunction(args[0]) or inspect.isclass(args[0])):
        return _make_remote(args[0], {})
    if args:
        raise TypeError("@nexus.remote takes a function or class, or only keyword options: @nexus.remote(num_cpus=1)")
    if not options:  # (as Ray: the parentheses are for options)
        raise TypeError("@nexus.remote() has no options: write @nexus.remote, or give some: @nexus.remote(num_cpus=1)")

    def decorate(target: Any) -> Any:
        return _make_remote(target, options)

    return decorate


def _make_remote(target: Any, options: dict[str, Any]) -> Any:
    if isinstance(target, (ActorClass, RemoteFunction)):
        raise TypeError(f"{target._name} is remote already: give it options with {target._name}.options(...)")
    if inspect.isclass(target):
        return ActorClass(target, options)
    if callable(target):
        return RemoteFunction(target, options)
    raise TypeError(f"@nexus.remote takes a function or a class, not {type(target).__qualname__}")
