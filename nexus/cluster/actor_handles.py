"""Actors from the caller's side: ``@nexus.remote`` on a class (:class:`ActorClass`), the handle its
``.remote()`` returns (:class:`ActorHandle`, which pickles: pass it to tasks and other actors), and a handle's
methods (:class:`ActorMethod`: ``.remote`` asks, ``.tell`` sends and forgets).
"""

from __future__ import annotations

import inspect
from typing import Any

from . import session as _session
from .definitions import ACTOR_OPTIONS, METHOD_OPTIONS, _check_options, _Definition, _runtime, _with_options
from .generators import DYNAMIC, STREAMING, YIELDS_KWARG, ObjectRefGenerator, yields_of
from .signatures import ArgumentCheck, method_checks
from .state.actors import ends_with_its_handles
from .values import ObjectRef

__all__ = ["ActorClass", "ActorHandle", "ActorMethod", "method"]

_BUILT_IN = frozenset({"__ray_ready__", "__ray_terminate__"})
_YIELDING = frozenset((STREAMING, DYNAMIC))


class _AsDeclared:
    """An ActorMethod whose calls hand back a generator's values as the method declares (its .options() did not
    say otherwise); one object, also where a pickled ActorMethod is loaded again."""

    def __reduce__(self) -> str:
        return "_AS_DECLARED"


_AS_DECLARED = _AsDeclared()
_DECORATED = "__nexus_method__"  # the attribute @nexus.method leaves on a method: its options


def method(*args: Any, **options: Any) -> Any:
    """``@nexus.method(num_returns=2, concurrency_group="io")`` on an actor's method (as Ray's ``@ray.method``):
    its calls' defaults, and the concurrency group (of the class's ``concurrency_groups``) they run in."""
    if args or not options:
        raise TypeError("@nexus.method takes keyword options only: @nexus.method(num_returns=2)")
    _check_options(options, METHOD_OPTIONS | {"concurrency_group"}, "@nexus.method")
    group = options.get("concurrency_group")
    if group is not None and not isinstance(group, str):
        raise TypeError(f"concurrency_group is the name of one of the class's concurrency_groups, not {group!r}")

    def decorate(fn: Any) -> Any:
        if not callable(fn):
            raise TypeError(f"@nexus.method goes on an actor's method, not {type(fn).__name__}")
        setattr(fn, _DECORATED, dict(options))
        return fn

    return decorate


class ActorMethod:
    """``handle.method``: ``.remote(...)`` (ask, returns an ObjectRef), ``.tell(...)`` (fire and forget), ``.options``."""

    __slots__ = ("_handle", "_name", "_num_returns", "_sent", "_yields")

    def __init__(
        self, handle: ActorHandle, name: str, num_returns: int | str = 1, yields: Any = _AS_DECLARED, group: str | None = None
    ) -> None:
        self._handle = handle
        self._name = name
        self._num_returns = num_returns
        self._yields = yields  # how this call hands back a generator's values, where .options() changed it
        # what the call names: the method, or "method@group" for a concurrency group of its own (worker.actors)
        self._sent = name if group is None else f"{name}@{group}"

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        self._check(args, kwargs)
        handle = self._handle
        num_returns = self._num_returns
        if self._yields is not _AS_DECLARED:  # (the worker reads it before it calls the method: cluster.generators)
            kwargs = {**kwargs, YIELDS_KWARG: self._yields}
        if num_returns == 0:  # (as Ray's: it runs, and what it returns is dropped)
            _runtime().submit_call(handle._actor_id, self._sent, args, kwargs, 1, True, handle._bounded)
            return None
        if type(num_returns) is not int:  # a generator method's values, as they come or all at once
            ref = _runtime().submit_call(handle._actor_id, self._sent, args, kwargs, 1, False, handle._bounded)[0]
            return ObjectRefGenerator(ref) if num_returns == STREAMING else ref
        refs = _runtime().submit_call(handle._actor_id, self._sent, args, kwargs, num_returns, False, handle._bounded)
        return refs[0] if num_returns == 1 else refs

    def tell(self, *args: Any, **kwargs: Any) -> None:
        self._check(args, kwargs)
        handle = self._handle
        _runtime().submit_call(handle._actor_id, self._sent, args, kwargs, 1, True, handle._bounded)

    def _check(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        checks = self._handle._checks
        if checks is not None and self._name in checks:
            checks[self._name](args, kwargs)

    def options(self, **options: Any) -> ActorMethod:
        _check_options(options, METHOD_OPTIONS | {"concurrency_group"}, f"actor method {self._name}")
        group = options.get("concurrency_group", self._sent.partition("@")[2] or None)
        if group is not None and (not isinstance(group, str) or not group or "@" in group):
            raise TypeError(f"concurrency_group is the name of one of the actor's concurrency_groups, not {group!r}")
        num_returns = options.get("num_returns", self._num_returns)
        backpressure = options.get("_generator_backpressure_num_objects")
        yields = self._yields
        if backpressure is not None or (num_returns != self._num_returns and _YIELDING.intersection((num_returns, self._num_returns))):
            yields = yields_of(None, num_returns if num_returns in _YIELDING else 1, backpressure)
        return ActorMethod(self._handle, self._name, num_returns, yields, group)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"actor method {self._name} cannot be called directly; use .remote(...) or .tell(...)")


class ActorHandle:
    """A handle to an actor in a worker process; pass it to tasks and other actors freely."""

    def __init__(
        self,
        actor_id: int,
        cls_name: str,
        methods: frozenset[str] | None = None,
        checks: dict[str, ArgumentCheck] | None = None,
        bounded: bool = False,
        returns: dict[str, int | str] | None = None,
        ref: ObjectRef | None = None,
    ) -> None:
        self._actor_id = actor_id
        self._cls_name = cls_name
        self._methods = methods
        self._checks = checks  # what each method's arguments must fit (travels with the handle)
        # Whether calls to it may be refused or made to wait (max_pending_calls, a bounded mailbox): a caller
        # inside a worker then asks the driver before each call instead of sending it and going on.
        self._bounded = bounded
        self._returns = returns  # the methods whose calls return more than one value (@nexus.method(num_returns=))
        self._ref = ref  # counts this handle, wherever it goes: the actor ends with the last one (see head.actor_lifetime)

    def __getattr__(self, name: str) -> ActorMethod:
        if name in _BUILT_IN:  # (every actor answers them, as Ray's: see worker.actors)
            return ActorMethod(self, name)
        if name.startswith("__"):
            raise AttributeError(name)
        if self._methods is not None and name not in self._methods:
            raise AttributeError(f"actor class {self._cls_name} has no method {name!r}")
        return ActorMethod(self, name, self._returns.get(name, 1) if self._returns else 1)

    def __reduce__(self) -> tuple[Any, ...]:
        return ActorHandle, (self._actor_id, self._cls_name, self._methods, self._checks, self._bounded, self._returns, self._ref)

    def __repr__(self) -> str:
        return f"Actor({self._cls_name}, {self._actor_id:016x})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    def __hash__(self) -> int:
        return hash(self._actor_id)


class ActorClass:
    """A class decorated with ``@nexus.remote``: ``.remote(...)`` creates an actor and returns its handle."""

    def __init__(self, cls: type, options: dict[str, Any]) -> None:
        self._cls = cls
        self._options = _check_options(dict(options), ACTOR_OPTIONS, f"actor class {cls.__qualname__}")
        self._name = cls.__qualname__
        self._def = _Definition(cls)
        self._methods = frozenset(name for name, _ in inspect.getmembers(cls, callable) if not name.startswith("__"))
        self._checks = method_checks(cls, self._methods)
        self._init_check = ArgumentCheck.of(cls, self._name)
        decorated = {name: getattr(getattr(cls, name), _DECORATED, None) for name in self._methods}
        self._returns = _returns_of(cls, decorated) or None
        self._groups = {name: o["concurrency_group"] for name, o in decorated.items() if o and o.get("concurrency_group")}
        _check_groups(self._options.get("concurrency_groups"), self._groups, self._name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"actor class {self._name} cannot be instantiated directly; use {self._name}.remote(...)")

    def __mro_entries__(self, bases: tuple) -> tuple:
        """``class Derived(SomeActorClass)``: refused, as Ray's (a handle's class is not a class to extend)."""
        raise TypeError(
            f"Inheriting from actor classes is not currently supported: {self._name} is an actor class. Inherit from "
            f"the plain class instead and make the derived class an actor class (with @nexus.remote)."
        )

    def __getattr__(self, name: str) -> Any:
        """The class's own attributes (constants, class and static methods), as Ray's actor classes give them."""
        if name.startswith("_"):  # (ours, or not set yet while it is unpickled)
            raise AttributeError(name)
        cls = self.__dict__.get("_cls")
        if cls is None:
            raise AttributeError(name)
        return getattr(cls, name)

    def virtual(self, identity: str, idle: float | None = None) -> Any:
        """The virtual actor of this class for ``identity``: activated on its first call, passivated when idle."""
        from .services.callers import virtual_handle

        return virtual_handle(self, identity, idle)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_def": self._def.id}  # the id travels; the shipped form is made again where needed

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._def = _Definition(self._cls, state["_def"], _session.current())

    def options(self, **options: Any) -> ActorClass:
        changed = _with_options(self, options, ACTOR_OPTIONS, f"actor class {self._name}")
        _check_groups(changed._options.get("concurrency_groups"), self._groups, self._name)
        return changed

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        runtime = _runtime()
        options = self._options
        if options.get("get_if_exists") and options.get("name"):
            found = self._existing(runtime)
            if found is not None:
                return found
        if self._init_check is not None:
            self._init_check(args, kwargs)
        if self._groups:
            _check_groups(options.get("concurrency_groups"), self._groups, self._name, made=True)
        cls_id, factory = self._def.id_in(runtime), self._def.factory
        kept = (
            "name",
            "namespace",
            "max_concurrency",
            "max_pending_calls",
            "mailbox",
            "max_restarts",
            "max_task_retries",
            "num_cpus",
            "num_gpus",
            "memory",
            "resources",
            "scheduling_strategy",
            "label_selector",
            "concurrency_groups",
            "lifetime",
        )
        actor_options = {k: v for k, v in options.items() if k in kept}
        config = getattr(runtime, "config", None)  # (a lifetime not given is the cluster's default, as Ray's)
        actor_options["lifetime"] = (options.get("lifetime") or getattr(config, "default_actor_lifetime", None) or "").replace(
            "-", "_"
        ) or None
        actor_options["_handle"] = (self._methods, self._checks, self._returns)  # (what get_actor's handles know)
        try:
            actor_id = runtime.create_actor(cls_id, factory, self._name, args, kwargs, actor_options)
        except ValueError as exc:  # (another caller made it between the look-up and here: that one is the actor)
            found = self._existing(runtime) if options.get("get_if_exists") and "already exists" in str(exc) else None
            if found is None:
                raise
            return found
        bounded = options.get("mailbox") is not None or options.get("max_pending_calls") not in (None, -1)
        ref = ObjectRef(actor_id) if ends_with_its_handles(actor_options) else None
        return ActorHandle(actor_id, self._name, self._methods, self._checks, bounded, self._returns, ref)

    def _existing(self, runtime: Any) -> ActorHandle | None:
        """A handle to the live actor of this class's ``name`` (get_if_exists), or None if there is none."""
        try:
            actor_id, cls_name, bounded = runtime.get_actor(self._options["name"], self._options.get("namespace"))
        except ValueError:
            return None
        return ActorHandle(actor_id, cls_name, self._methods, self._checks, bounded, self._returns)


def _check_groups(groups: Any, used: dict[str, str], cls_name: str, made: bool = False) -> None:
    """The class's ``concurrency_groups`` (names to how many calls each runs at once) hold the methods' groups
    (checked before, when they are given; and when an actor is ``made``, whether given or not)."""
    if groups is None and not made:
        return
    if groups is not None and (
        not isinstance(groups, dict)
        or not all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 1 for k, v in groups.items())
    ):
        raise ValueError(f"concurrency_groups of {cls_name} is a dict of group names to calls at once (1 or more), not {groups!r}")
    for name, group in used.items():
        if group not in (groups or {}):
            have = ", ".join(sorted(groups or {})) or "none"
            raise ValueError(f"{cls_name}.{name} runs in concurrency group {group!r}, which {cls_name} does not have (it has {have})")


def _returns_of(cls: type, decorated: dict[str, Any]) -> dict[str, int | str]:
    """The methods whose calls return other than one value: ``@nexus.method(num_returns=)``, and generators
    (their values as they come, unless declared otherwise; see cluster.generators)."""
    returns: dict[str, int | str] = {}
    for name, options in decorated.items():
        num_returns = (options or {}).get("num_returns")
        yields = yields_of(getattr(cls, name), num_returns)
        if yields is not None:
            returns[name] = yields[0]
        elif num_returns not in (None, 1):
            returns[name] = num_returns
    return returns
