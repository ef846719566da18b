"""Running a generator task or method in a worker: each value it yields sent on as it comes (see ``head.streams``).

``yields`` is how the caller wants them (``nexus.cluster.generators.yields_of``):
``("streaming", room)`` sends each value to the head at once (and waits for
the consumer once ``room`` values wait unread, if ``room``); ``("dynamic", 0)``
puts each one and returns their refs as one value; None takes the values as
the call's results, as many as it has.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

from ..generators import DYNAMIC, DynamicObjectRefGenerator
from ..values import Blob, ObjectRef, error_blob, serialize

__all__ = ["drain", "drain_async", "is_generator"]


def is_generator(value: Any) -> bool:
    return inspect.isgenerator(value) or inspect.isasyncgen(value)


def _not_a_generator(value: Any, yields: tuple[str, int], name: str) -> TypeError:
    return TypeError(f"{name} has num_returns={yields[0]!r} but returned {type(value).__name__}, not a generator (use yield)")


class Partial:
    """A generator that failed after some values (as Ray's): those are its first results, its error the rest."""

    __slots__ = ("error", "items")

    def __init__(self, items: list[Any], error: BaseException) -> None:
        self.items = items
        self.error = error

    def results(self, where: str, result_ids: list[int], name: str) -> list[tuple[int, Blob]]:
        made = [
            (oid, serialize(item, f"value {i} that {name} yielded"))
            for i, (oid, item) in enumerate(zip(result_ids, self.items, strict=False))
        ]
        failed = error_blob(self.error, where, user=True)
        return made + [(oid, failed) for oid in result_ids[len(made) :]]


class DynamicPartial(Partial):
    """A dynamic generator that failed: its result is the refs of its values and then of its error (as Ray's), and
    the error comes with the results too, so that the head retries the task if ``retry_exceptions`` says so."""

    __slots__ = ("failed",)

    def __init__(self, refs: list[ObjectRef], error: BaseException, failed: tuple[int, Blob]) -> None:
        super().__init__(refs, error)
        self.failed = failed  # (the error ref's id, the error as put)

    def results(self, where: str, result_ids: list[int], name: str) -> list[tuple[int, Blob]]:
        made = serialize(DynamicObjectRefGenerator(self.items), f"the refs of what {name} yielded")
        return [(result_ids[0], made), self.failed]


def _fixed(items: list[Any], failure: BaseException | None, result_ids: list[int], name: str) -> Any:
    """The results of a generator with an int num_returns: as many values as that (more are dropped, as Ray's)."""
    if failure is not None:
        return Partial(items, failure)
    if len(items) < len(result_ids):
        raise ValueError(f"{name} has num_returns={len(result_ids)} but yielded {len(items)} values")
    if len(items) > len(result_ids):
        print(f"nexus: {name} yielded {len(items)} values for num_returns={len(result_ids)}: the rest are dropped", file=sys.stderr)
    return items[0] if len(result_ids) == 1 else items[: len(result_ids)]


def _gathered(value: Any) -> tuple[list[Any], Exception | None]:
    items: list[Any] = []
    try:
        for item in value:
            items.append(item)
    except Exception as exc:  # (the values before it stay the call's)
        return items, exc
    return items, None


def _failed_dynamic(exe: Any, refs: list[ObjectRef], failure: Exception) -> DynamicPartial:
    """A dynamic generator's result once it raised: the error is put as the ref after the values' (its get raises
    it), and is one of the call's results as well."""
    oid = exe.new_id()
    failed = error_blob(failure, exe.where, user=True)
    exe.send(("put", oid, failed))
    return DynamicPartial([*refs, ObjectRef(oid)], failure, (oid, failed))


def drain(exe: Any, value: Any, yields: tuple[str, int] | None, result_ids: list[int], name: str) -> Any:
    """Run generator ``value`` to its end; returns what the call's result is then."""
    if not inspect.isgenerator(value):
        if yields is not None:
            raise _not_a_generator(value, yields, name)
        return value
    if yields is None:
        return _fixed(*_gathered(value), result_ids, name)
    if yields[0] == DYNAMIC:
        refs: list[ObjectRef] = []
        try:
            for item in value:
                refs.append(exe.put(item))
        except Exception as exc:
            return _failed_dynamic(exe, refs, exc)
        return DynamicObjectRefGenerator(refs)
    task, room = result_ids[0], yields[1]
    made = 0
    for item in value:
        exe.send(("yield", task, made, serialize(item, f"value {made} that {name} yielded")))
        made += 1
        if room:
            exe._request(("stream_room", task, made, room))
    return None


async def drain_async(exe: Any, value: Any, yields: tuple[str, int] | None, result_ids: list[int], name: str) -> Any:
    """``drain`` of an async generator (an async actor's method), on the actor's event loop."""
    if not inspect.isasyncgen(value):
        return drain(exe, value, yields, result_ids, name)
    if yields is None or yields[0] == DYNAMIC:
        items: list[Any] = []
        failure: Exception | None = None
        try:
            async for item in value:
                items.append(item)
        except Exception as exc:
            failure = exc
        if yields is None:
            return _fixed(items, failure, result_ids, name)
        refs = [exe.put(item) for item in items]
        return DynamicObjectRefGenerator(refs) if failure is None else _failed_dynamic(exe, refs, failure)
    import asyncio

    loop = asyncio.get_running_loop()
    task, room = result_ids[0], yields[1]
    made = 0
    async for item in value:
        exe.send(("yield", task, made, serialize(item, f"value {made} that {name} yielded")))
        made += 1
        if room:  # (the wait for the consumer off the loop: the actor's other calls go on meanwhile)
            await loop.run_in_executor(None, exe._request, ("stream_room", task, made, room))
    return None
