"""The object store as user code in a worker sees it (``set_client``): a client that asks the driver for regions."""

from __future__ import annotations

from typing import Any

from ...core.errors import ObjectStoreFullError
from ..store import Arena, Pin
from ..values import Blob, StoreClient, deserialize
from .loop import WorkerRuntime

__all__ = ["_WorkerStore"]


class _WorkerStore(StoreClient):
    """A worker's side of the object store: regions come from the driver; ref changes go to it, in order."""

    adopts_pins = True

    def __init__(self, runtime: WorkerRuntime, arena: str | Arena | None) -> None:
        self.runtime = runtime
        self.answers = runtime.answers  # ref changes go among the held answers, in the order they happened
        self.arena = (Arena.attach(arena) if arena else None) if isinstance(arena, str) else arena  # (by name, or inherited)
        self.inline_max = runtime.config.inline_max

    def allocate(self, nbytes: int) -> int:
        answer = self.runtime._request(("alloc", nbytes), blocking=False)
        if isinstance(answer, Blob):
            raise deserialize(answer).to_exception()
        offset = int(answer)
        if self.node:  # (a joined node's arena: its regions are reserved by their writers)
            reserve(self, offset, nbytes)
        return offset

    def free(self, offset: int, nbytes: int) -> None:
        self.runtime.send(("free", offset, nbytes))

    def pin(self, oid: int, region: tuple[int, int]) -> Pin:
        assert self.arena is not None
        self.answers.ref_op(oid, 0, 1)
        return self.arena.pin(region[0], region[1], lambda: self.answers.ref_op(oid, 0, -1))

    def adopt_pin(self, oid: int, region: tuple[int, int] | None) -> Any:
        """The pin the driver took when it sent us this blob: released when the blob and its views are gone."""
        if not oid:
            return None
        if region is None or self.arena is None:
            return _Hold(lambda: self.answers.ref_op(oid, 0, -1))
        return self.arena.pin(region[0], region[1], lambda: self.answers.ref_op(oid, 0, -1))

    def copied(self, oid: int, offset: int, ok: bool) -> None:
        self.runtime.send(("copied", oid, offset, ok))

    def located(self, oid: int) -> Blob | None:
        blobs = self.runtime.get_blobs([oid], None)
        return None if blobs is None else blobs[0]

    def acquire(self, oid: int) -> None:
        self.answers.ref_op(oid, 1, 0)

    def acquire_many(self, oids: tuple[int, ...]) -> None:
        self.answers.ref_ops.extend((oid, 1, 0) for oid in oids)

    def release(self, oid: int) -> None:
        self.answers.ref_op(oid, -1, 0)


def reserve(client: StoreClient, offset: int, nbytes: int) -> None:
    """Reserve a region just handed out in the arena of ``client``; ObjectStoreFullError (the region given back)
    when /dev/shm is full."""
    try:
        client.arena.ensure(offset, nbytes)
    except OSError as exc:
        client.free(offset, nbytes)
        raise ObjectStoreFullError(f"this host's /dev/shm has no room for {nbytes:,} bytes: {exc}") from None


class _Hold:
    """A pin of a blob that lives outside the arena (it holds refs): released with the blob."""

    __slots__ = ("_on_release",)

    def __init__(self, on_release: Any) -> None:
        self._on_release = on_release

    def __del__(self) -> None:
        hook, self._on_release = self._on_release, None
        if hook is not None:
            try:
                hook()
            except Exception:
                pass
