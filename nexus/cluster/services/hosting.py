"""Shared hosting of virtual actors: many activations of a class in one process of each node (Orleans' silo).

A class with ``virtual_hosting = "shared"`` is not given a process an identity: the directory keeps one *host*
actor of the class on each node it places identities on (named ``virtual-host:<kind>@<node>``), and each
activation is an instance of the class in it. An identity's calls run one at a time, in the order they came (an
``asyncio.Lock`` of its own, which is first come, first served); the identities of a host run side by side: a
coroutine method on the host's loop, a plain one on a thread of its pool. A host is not restarted when its process
dies (its activations went with it): the directory makes them again, elsewhere or in a new host, on their next
call. Costs an activation an instance, not a process: a thousand identities fit where ten processes would.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HOST_PREFIX", "THREADS", "VirtualHost", "host_name", "hosted"]

HOST_PREFIX = "virtual-host:"
THREADS = 32  # threads of a host for its activations' plain (not coroutine) methods


def hosted(cls: Any) -> bool:
    """Whether the class's activations share a host process (``virtual_hosting = "shared"``) or each have their own
    (``"process"``, the default); ValueError for anything else."""
    how = getattr(cls._cls, "virtual_hosting", "process")
    if how not in ("process", "shared"):
        raise ValueError(f"{cls._name}.virtual_hosting is 'process' (an activation a process) or 'shared' (many a host), not {how!r}")
    return how == "shared"


def host_name(kind: str, node: str) -> str:
    return f"{HOST_PREFIX}{kind}@{node or 'any'}"


@dataclass
class _Hosted:
    instance: Any = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    calls: int = 0


class VirtualHost:
    """The activations of one class in one process: ``activate``, ``call``, ``deactivate`` each an identity's,
    asked by the directory (and ``call`` by callers holding a lease)."""

    def __init__(self, cls: type | None, kind: str) -> None:
        if cls is None:  # (looked up by name, by a directory adopting, after it died: nothing to host)
            raise LookupError(f"the host of {kind} is gone")
        self.cls, self.kind = cls, kind
        self.hosted: dict[str, _Hosted] = {}
        self.pool: ThreadPoolExecutor | None = None

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if inspect.iscoroutinefunction(fn):
            return await fn(*args, **kwargs)
        if self.pool is None:
            self.pool = ThreadPoolExecutor(THREADS, thread_name_prefix="nexus-virtual")
        context = contextvars.copy_context()  # (the call's trace goes with it to the thread)
        call = functools.partial(context.run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.pool, call)

    async def activate(self, identity: str) -> bool:
        """Make ``identity``'s activation here (its constructor, then its ``on_activate``); False if it is here
        already (the directory restarted and adopts it)."""
        if identity in self.hosted:
            return False
        slot = self.hosted[identity] = _Hosted()
        async with slot.lock:  # (calls that come meanwhile wait for it)
            try:
                slot.instance = await self._run(self.cls)
                if callable(getattr(slot.instance, "on_activate", None)):
                    await self._run(slot.instance.on_activate, identity)
            except BaseException:
                del self.hosted[identity]
                raise
        return True

    async def call(self, identity: str, method: str, args: tuple, kwargs: dict) -> Any:
        slot = self.hosted.get(identity)
        if slot is None:
            raise LookupError(f"{self.kind}/{identity} is not active in this host (pid {os.getpid()}); call it again")
        async with slot.lock:
            if self.hosted.get(identity) is not slot:  # (passivated while this call waited: the directory's to say)
                raise LookupError(f"{self.kind}/{identity} was passivated while the call waited; call it again")
            bound = getattr(slot.instance, method, None)
            if bound is None or method.startswith("_"):
                raise AttributeError(f"virtual actor class {self.cls.__qualname__} has no method {method!r}")
            slot.calls += 1
            return await self._run(bound, *args, **kwargs)

    async def deactivate(self, identity: str) -> bool:
        """Let ``identity``'s activation go, after its ``on_deactivate`` (once the calls in it ended)."""
        slot = self.hosted.get(identity)
        if slot is None:
            return False
        async with slot.lock:
            try:
                if callable(getattr(slot.instance, "on_deactivate", None)):
                    await self._run(slot.instance.on_deactivate)
            finally:
                if self.hosted.get(identity) is slot:
                    del self.hosted[identity]
        return True

    async def identities(self) -> list[str]:
        """The identities active here (for a directory that restarted: it adopts them)."""
        return [i for i, slot in self.hosted.items() if slot.instance is not None]

    async def counts(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "hosted": len(self.hosted), "calls": sum(s.calls for s in self.hosted.values())}
