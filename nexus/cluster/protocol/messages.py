"""Every message between the driver and its workers, one type per operation, with its fields in wire order.

On the wire a message is a plain tuple, its operation's name first: ``("task",
task_id, fn_id, ...)``. Senders build the tuple directly (a NamedTuple built
and unpacked per message cost ~1 us more, measured, on a path where a whole
actor call takes ~25 us); these types are its schema. The handler of each
operation (``Runtime._handlers`` in the driver, ``WorkerRuntime._handlers`` in
a worker) takes exactly these fields, in this order, and
``tests/cluster/test_protocol.py`` checks that it does. ``parse`` turns a
received tuple into its typed message (for tools and tests).
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["TO_DRIVER", "TO_WORKER", "parse"]

Items = list[tuple[int, Any]]  # (object id, Blob) pairs
# In a Task, Call or CreateActor: an argument the driver has on disk travels as None in ``deps`` (as its object id,
# an int, for ``args_blob``), and the worker asks for it with a get: read back on a helper, never under the lock.
Timing = tuple[int, int, int, int, bool]  # started, arguments read, returned, results made (monotonic ns), ok


# -- worker -> driver --------------------------------------------------------------------------------------


class Hello(NamedTuple):
    """The worker started and attached to its channel."""

    worker_index: int
    pid: int


class Done(NamedTuple):
    """A task or call ended: its results (or its error, under every result id)."""

    task_id: int
    items: Items
    timing: Timing | None = None


class DoneMany(NamedTuple):
    """Answers coalesced: (task_id, items, timing) of calls that ended while more waited."""

    entries: list[tuple[int, Items, Timing | None]]


class Blocked(NamedTuple):
    """The worker's main thread waits in ``get`` (True) or runs again (False)."""

    flag: bool


class Revoked(NamedTuple):
    """The tasks of a ``revoke`` that had not started, given back."""

    task_ids: list[int]


class Room(NamedTuple):
    """A window of task submissions sent: answered (``objects``) once the driver's queue has room."""

    request: int


class Submit(NamedTuple):
    """A task submitted inside the worker (``def_blob``: the function, the first time this worker ships it)."""

    fn_id: bytes
    def_blob: Any
    name: str
    args_blob: Any
    deps: list[int]
    result_ids: list[int]
    options: dict[str, Any]
    trace: int = 0
    parent: int = 0


class SubmitCall(NamedTuple):
    """An actor call made inside the worker, to an actor without bounds."""

    actor_id: int
    method: str
    args_blob: Any
    deps: list[int]
    result_ids: list[int]
    trace: int = 0
    parent: int = 0


class SubmitCallBounded(NamedTuple):
    """An actor call to an actor with max_pending_calls or a bounded mailbox: answered admitted, dropped or refused."""

    request: int
    actor_id: int
    method: str
    args_blob: Any
    deps: list[int]
    result_ids: list[int]
    trace: int = 0
    parent: int = 0


class CreateActorRequest(NamedTuple):
    """An actor created inside the worker: answered (``objects``) with None or the error."""

    request: int
    actor_id: int
    cls_id: bytes
    def_blob: Any
    name: str
    args_blob: Any
    deps: list[int]
    options: dict[str, Any]


class ActorReady(NamedTuple):
    """The actor's constructor returned (``error``: None) or raised."""

    actor_id: int
    error: Any
    sequential: bool = False
    concurrency: int = 1


class Put(NamedTuple):
    oid: int
    blob: Any


class Refs(NamedTuple):
    """Ref and pin changes (oid, dref, dpin), in the order they happened."""

    ops: list[tuple[int, int, int]]


class Alloc(NamedTuple):
    """A region of the arena for ``nbytes``: answered with its offset or an error."""

    request: int
    nbytes: int


class Free(NamedTuple):
    """A region given back unused."""

    offset: int
    nbytes: int


class Copied(NamedTuple):
    """A copy of ``oid`` was written (``ok``) or given up at ``offset`` of the sender's arena, as the head asked."""

    oid: int
    offset: int
    ok: bool


class Get(NamedTuple):
    request: int
    ids: list[int]
    timeout: float | None
    blocks: bool = False  # the worker's main thread waits for the answer: blocked, if it cannot come at once


class Yield(NamedTuple):
    """Value number ``seq`` (0, 1, ...) a streaming generator yielded (see head.streams); ``task``: its call's result id."""

    task: int
    seq: int
    blob: Any


class StreamRoom(NamedTuple):
    """A streaming generator has yielded ``made`` values and may leave ``room`` unread: answered once it may go on."""

    request: int
    task: int
    made: int
    room: int


class Wait(NamedTuple):
    request: int
    ids: list[int]
    num_returns: int
    timeout: float | None


class Control(NamedTuple):
    """``control_<op>(*args)`` of the driver (get_actor, kill, cancel): answered with its result or an error."""

    request: int
    op: str
    args: tuple[Any, ...] = ()  # the rest of the tuple


class Batch(NamedTuple):
    """Messages coalesced into one, handled in order (calls or tasks to a worker; ref changes and a call from a driver)."""

    messages: list[tuple[Any, ...]]


TO_DRIVER: dict[str, type[tuple[Any, ...]]] = {
    "hello": Hello,
    "done": Done,
    "done_many": DoneMany,
    "blocked": Blocked,
    "revoked": Revoked,
    "room": Room,
    "submit": Submit,
    "submit_call": SubmitCall,
    "submit_call_bounded": SubmitCallBounded,
    "create_actor": CreateActorRequest,
    "actor_ready": ActorReady,
    "put": Put,
    "refs": Refs,
    "alloc": Alloc,
    "free": Free,
    "copied": Copied,
    "get": Get,
    "wait": Wait,
    "batch": Batch,
    "control": Control,
    "yield": Yield,
    "stream_room": StreamRoom,
}


# -- driver -> worker --------------------------------------------------------------------------------------


class Objects(NamedTuple):
    """The answer to a request: (object id, Blob) pairs, or (0, answer) for a request that is not a get."""

    request: int
    items: Items


class Define(NamedTuple):
    """A function or class, sent once per worker before its first use there."""

    def_id: bytes
    blob: Any


class Exit(NamedTuple):
    """Leave now (the cluster shuts down)."""


class Task(NamedTuple):
    task_id: int
    fn_id: bytes
    name: str
    args_blob: Any
    deps: Items
    result_ids: list[int]
    trace: int = 0
    yields: tuple[str, int] | None = None  # a generator's: how it hands back its values (see cluster.generators)
    on_top: bool = False  # sent to run on top of a task that waits in get there (see head.surplus)


class Cancel(NamedTuple):
    task_id: int


class Revoke(NamedTuple):
    """Give back these tasks if they have not started (an idle worker takes them)."""

    task_ids: list[int]


class Window(NamedTuple):
    """Tasks the worker may submit before it asks for room."""

    size: int


class Backpressure(NamedTuple):
    """The driver's task queue is full (True: submitters wait) or has room again."""

    full: bool


class Call(NamedTuple):
    actor_id: int
    call_id: int
    method: str
    args_blob: Any
    deps: Items
    result_ids: list[int]
    trace: int = 0


class CreateActor(NamedTuple):
    """Run the actor's constructor here: this worker hosts it from now on."""

    actor_id: int
    cls_id: bytes
    name: str
    args_blob: Any
    deps: Items
    options: dict[str, Any]


TO_WORKER: dict[str, type[tuple[Any, ...]]] = {
    "objects": Objects,
    "def": Define,
    "batch": Batch,
    "exit": Exit,
    "task": Task,
    "cancel": Cancel,
    "revoke": Revoke,
    "window": Window,
    "backpressure": Backpressure,
    "call": Call,
    "create_actor": CreateActor,
}


def parse(body: tuple[Any, ...], to_driver: bool) -> tuple[Any, ...]:
    """The typed message of a received tuple; ValueError if its operation is unknown or its fields do not fit."""
    kinds = TO_DRIVER if to_driver else TO_WORKER
    kind = kinds.get(body[0]) if body else None
    if kind is None:
        raise ValueError(f"unknown operation {body[0] if body else body!r}")
    fields = body[1:]
    if kind is Control:
        return Control(fields[0], fields[1], tuple(fields[2:]))
    try:
        return kind(*fields)
    except TypeError as exc:
        raise ValueError(f"a {body[0]!r} message does not fit its fields: {exc}") from None
