"""Running a generator task or method in a worker: each value it yields sent on as it comes (see ``head.streams``).

``yields`` is how the caller wants them (``nexus.cluster.generators.yields_of``):
``("streaming", room)`` sends each value to the head at once (and waits for
the consumer once ``room`` values wait unread, if ``room``); ``("dynamic", 0)``
puts each one and returns their refs as one value; None takes the values as
the call's results, as many as it has.
"""

from __future__ import annotations

import inspect
from typing import Any

from ..generators import DYNAMIC, DynamicObjectRefGenerator
from ..values import serialize

__all__ = ["drain", "drain_async", "is_generator"]


def is_generator(value: Any) -> bool:
    return inspect.isgenerator(value) or inspect.isasyncgen(value)


def _not_a_generator(value: Any, yields: tuple[str, int], name: str) -> TypeError:
    return TypeError(f"{name} has num_returns={yields[0]!r} but returned {type(value).__name__}, not a generator (use yield)")


def _fixed(items: list[Any], result_ids: list[int], name: str) -> Any:
    if len(result_ids) == 1:
        if len(items) != 1:
            raise ValueError(f"{name} has num_returns=1 but yielded {len(items)} values")
        return items[0]
    return items  # (their count is checked with the results)


def drain(exe: Any, value: Any, yields: tuple[str, int] | None, result_ids: list[int], name: str) -> Any:
    """Run generator ``value`` to its end; returns what the call's result is then."""
    if not inspect.isgenerator(value):
        if yields is not None:
            raise _not_a_generator(value, yields, name)
        return value
    if yields is None:
        return _fixed(list(value), result_ids, name)
    if yields[0] == DYNAMIC:
        return DynamicObjectRefGenerator([exe.put(item) for item in value])
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
    if yields is None:
        return _fixed([item async for item in value], result_ids, name)
    if yields[0] == DYNAMIC:
        return DynamicObjectRefGenerator([exe.put(item) async for item in value])
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
