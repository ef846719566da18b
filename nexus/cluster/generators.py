"""Generator tasks and methods from the caller's side (as Ray's): what a ``yield`` in remote code gives back.

A remote function or actor method that yields is a *streaming generator* by
default (``num_returns="streaming"``): ``.remote()`` returns an
:class:`ObjectRefGenerator` at once, and each ``next()`` gives the ref of the
next value as soon as the worker has yielded it, while the generator goes on
running. An error raised mid-stream comes as the next ref (its ``get``
raises it), then the stream ends. With ``_generator_backpressure_num_objects=N``
the generator pauses once N values wait unread.

``num_returns="dynamic"`` runs the generator to its end first: the one ref
``.remote()`` returns resolves to a :class:`DynamicObjectRefGenerator`, a
list of the values' refs. An int ``num_returns`` takes that many yielded
values as the call's results.

The values travel under ids the head hands out (see ``head.streams``); the
consumer asks it for item ``i`` with the control op ``stream_next``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from ..core.errors import GetTimeoutError
from . import session as _session
from .values import ObjectRef, _rebuild_ref

__all__ = ["YIELDS_KWARG", "DynamicObjectRefGenerator", "ObjectRefGenerator", "generator_call", "yields_of"]

# An actor call whose .options() set how a generator method hands back its values carries that here, among its
# keyword arguments (the worker takes it out before it calls the method): the method's declaration says otherwise.
YIELDS_KWARG = "__nexus_yields__"
STREAMING = "streaming"
DYNAMIC = "dynamic"
_MODES = (STREAMING, DYNAMIC)


def check_num_returns(value: Any) -> None:
    if value in _MODES:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(
            f'The keyword \'num_returns\' only accepts None, a non-negative integer, or "dynamic" (or "streaming"), not {value!r}'
        )


def yields_of(fn: Any, num_returns: Any, backpressure: Any = None) -> tuple[str, int] | None:
    """How a call of ``fn`` with ``num_returns`` (None: not given) hands back what it yields: ``(mode, room)``
    for a streaming or dynamic generator (room: values that may wait unread, 0 for no bound), None otherwise."""
    if num_returns is None:
        num_returns = STREAMING if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn) else 1
    if num_returns not in _MODES:
        return None
    if backpressure is not None and (not isinstance(backpressure, int) or isinstance(backpressure, bool) or backpressure < -1):
        raise ValueError(f"_generator_backpressure_num_objects is a count of values, not {backpressure!r}")
    return (num_returns, max(0, backpressure or 0))


_METHOD_YIELDS: dict[tuple[type, str], tuple[str, int] | None] = {}


def method_yields(cls: type, method: str) -> tuple[str, int] | None:
    """How a call of actor method ``method`` hands back what it yields, as its declaration says (once a method)."""
    key = (cls, method)
    try:
        return _METHOD_YIELDS[key]
    except KeyError:
        pass
    fn = getattr(cls, method, None)
    options = getattr(fn, "__nexus_method__", None) or {}
    found = yields_of(fn, options.get("num_returns"), options.get("_generator_backpressure_num_objects"))
    if len(_METHOD_YIELDS) >= 4096:  # (classes redefined in a notebook for hours: the old ones go)
        _METHOD_YIELDS.clear()
    _METHOD_YIELDS[key] = found
    return found


def generator_call(runtime: Any, fn_id: bytes, factory: Any, name: str, fn: Any, args: tuple, kwargs: dict, options: dict[str, Any]) -> Any:
    """``.remote()`` of a generator task: an ObjectRefGenerator (streaming), or the one ref of a dynamic one."""
    num_returns = options.get("num_returns")
    yields = yields_of(fn, num_returns or None, options.get("_generator_backpressure_num_objects"))
    assert yields is not None  # (called for a generator function, or num_returns "streaming" or "dynamic")
    ref = runtime.submit_task(fn_id, factory, name, args, kwargs, 1, {**options, "_yields": yields})[0]
    return ref if yields[0] == DYNAMIC else ObjectRefGenerator(ref)


class ObjectRefGenerator:
    """The refs a streaming generator task or method yields, in order, as they come (Ray's ``ObjectRefGenerator``).

    Iterate it (``for ref in gen``, ``async for ref in gen``) or call ``next``;
    ``nexus.get`` each ref for its value. ``completed()`` is the ref of the
    task itself (ready once the generator has ended); ``nexus.cancel(gen)``
    stops the generator.
    """

    __slots__ = ("_done", "_index", "_ref")

    def __init__(self, ref: ObjectRef) -> None:
        self._ref = ref
        self._index = 0
        self._done = False

    def __iter__(self) -> Iterator[ObjectRef]:
        return self

    def __next__(self) -> ObjectRef:
        ref = self._next(None)
        if ref is None:
            raise StopIteration
        return ref

    def __aiter__(self) -> ObjectRefGenerator:
        return self

    async def __anext__(self) -> ObjectRef:
        import asyncio  # (here: a worker starts without it)

        ref = await asyncio.get_running_loop().run_in_executor(None, self._next, None)
        if ref is None:
            raise StopAsyncIteration
        return ref

    def _next_sync(self, timeout_s: float | None = None) -> ObjectRef:
        """The next ref, waiting at most ``timeout_s``: GetTimeoutError if none came (the stream goes on),
        StopIteration once it has ended (as Ray's)."""
        ref = self._next(timeout_s)
        if ref is None:
            raise StopIteration
        return ref

    def _next(self, timeout: float | None) -> ObjectRef | None:
        if self._done:
            return None
        runtime = _session.current()
        if runtime is None:
            raise RuntimeError("the cluster this generator's task ran in is gone (nexus.shutdown)")
        task = self._ref.id
        while True:
            kind, oid = runtime.control("stream_next", task, self._index)
            if kind == "item":
                self._index += 1
                return _rebuild_ref(oid)  # (counted here: the head lets go of its own ref at the next ask)
            if kind == "end":
                self._done = True
                return None
            # not yielded yet: wait until it is, or the generator ends without it (its task is done)
            if not runtime.wait_ids([oid, task], 1, timeout) and timeout is not None:
                raise GetTimeoutError(f"no value came from the generator within {timeout} s")

    def completed(self) -> ObjectRef:
        """The ref of the generator's task: ready once it has ended (its get raises the error it ended with)."""
        return self._ref

    def is_finished(self) -> bool:
        """Whether every ref has been taken (``next`` raises StopIteration now)."""
        return self._done

    def next_ready(self) -> bool:
        """Whether ``next`` would return at once."""
        if self._done:
            return True
        runtime = _session.current()
        if runtime is None:
            return True
        kind, oid = runtime.control("stream_next", self._ref.id, self._index)
        return kind != "wait" or bool(runtime.wait_ids([oid, self._ref.id], 1, 0))

    def __repr__(self) -> str:
        return f"ObjectRefGenerator({self._ref.hex()}, next={self._index})"

    def __reduce__(self) -> Any:
        raise TypeError("an ObjectRefGenerator is read where its call was made: pass the refs it gives instead")


class DynamicObjectRefGenerator:
    """What a ``num_returns="dynamic"`` call's ref resolves to: the refs of every value it yielded, in order."""

    __slots__ = ("_refs",)

    def __init__(self, refs: list[ObjectRef]) -> None:
        self._refs = refs

    def __iter__(self) -> Iterator[ObjectRef]:
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)

    def __repr__(self) -> str:
        return f"DynamicObjectRefGenerator({len(self._refs)} refs)"
