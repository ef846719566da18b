"""What remote functions and actor classes share: their options and the checks of them, the form a definition
travels in (:class:`_Definition`), and the session a call goes to (started on first use, as Ray's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import session as _session
from .generators import check_num_returns
from .values import Blob, serialize

if TYPE_CHECKING:
    from .session import Session

__all__ = ["ACTOR_OPTIONS", "METHOD_OPTIONS", "TASK_OPTIONS"]

TASK_OPTIONS = frozenset(
    "num_cpus num_gpus resources num_returns max_retries retry_exceptions name scheduling_strategy label_selector memory "
    "max_calls _metadata _generator_backpressure_num_objects".split()
)
ACTOR_OPTIONS = frozenset(
    "num_cpus num_gpus resources name namespace get_if_exists lifetime max_restarts max_task_retries max_concurrency "
    "max_pending_calls mailbox scheduling_strategy label_selector memory concurrency_groups _metadata".split()
)
# Counts that are whole numbers (Ray's words when they are not), and what each accepts
_COUNTS = {
    "max_calls": "None, 0 or a positive integer",
    "max_retries": "None, 0, -1 or a positive integer, where -1 represents infinity.",
    "max_restarts": "None, 0, -1 or a positive integer, where -1 represents infinity.",
    "max_task_retries": "None, 0, -1 or a positive integer, where -1 represents infinity.",
}
_PRECISION = 1e-4  # the finest fraction of a resource (as Ray's)
MAX_DEFINITION_BYTES = 60 << 20  # a function or class travels in one message (64 MiB at most, with the rest)
METHOD_OPTIONS = frozenset({"num_returns", "name", "max_task_retries", "retry_exceptions", "_generator_backpressure_num_objects"})


def _check_options(options: dict[str, Any], allowed: frozenset[str], what: str) -> dict[str, Any]:
    unknown = sorted(set(options) - allowed)
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise ValueError(f"unknown option{'s' if len(unknown) > 1 else ''} {names} for {what}; known: {', '.join(sorted(allowed))}")
    if options.get("name") is not None and not isinstance(options["name"], str):
        raise TypeError(f"the name of {what} is a string, not {options['name']!r}")
    if options.get("namespace") is not None and not isinstance(options["namespace"], str):
        raise TypeError(f"the namespace of {what} is a string, not {options['namespace']!r}")
    if options.get("get_if_exists") and options.get("name") is None:
        raise ValueError(f"get_if_exists=True looks the actor up by its name: give {what} a name= too")
    _check_counts(options)
    check_num_returns(options.get("num_returns", 1))
    if options.get("lifetime") not in (None, "detached", "non_detached", "non-detached"):
        raise ValueError(
            f"an actor's lifetime is None, 'non_detached' or 'detached' (it outlives its handles), not {options['lifetime']!r}"
        )
    mailbox = options.get("mailbox")
    if mailbox is not None:
        from ..core.mailbox import MailboxKind, MailboxSpec

        if not isinstance(mailbox, MailboxSpec) or mailbox.kind is not MailboxKind.BACKPRESSURE:
            raise ValueError(
                f"mailbox must be a bounded MailboxSpec, such as MailboxSpec.bounded(1000, OverflowPolicy.BLOCK), not {mailbox!r}"
            )
    for key in ("num_cpus", "max_concurrency", "max_restarts", "max_retries", "max_pending_calls"):
        value = options.get(key)
        low = 1 if key == "max_concurrency" else -1
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value < low):
            raise ValueError(f"{key} must be a number, not {value!r}")
    return options


def _check_counts(options: dict[str, Any]) -> None:
    """The whole-number options, ``_metadata`` and the precision of resource amounts, in Ray's words."""
    for key, accepts in _COUNTS.items():
        value = options.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"The type of keyword '{key}' must be {(int, type(None))}, but received type {type(value)}")
        if value < (0 if key == "max_calls" else -1):
            raise ValueError(f"The keyword '{key}' only accepts {accepts} (given: {value})")
    num_returns = options.get("num_returns")
    if num_returns is not None and (not isinstance(num_returns, (int, str)) or isinstance(num_returns, bool)):
        raise TypeError(f"The type of keyword 'num_returns' must be {(int, str, type(None))}, but received type {type(num_returns)}")
    metadata = options.get("_metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"The type of keyword '_metadata' must be {(dict, type(None))}, but received type {type(metadata)}")
    resources = options.get("resources")
    amounts = {**(resources if isinstance(resources, dict) else {}), **{k: options.get(k) for k in ("num_cpus", "num_gpus")}}
    for name, amount in amounts.items():
        if isinstance(amount, float) and 0 < abs(amount) and abs(round(amount / _PRECISION) * _PRECISION - amount) > 1e-12:
            raise ValueError(
                f"The precision of the fractional quantity of resource {name} cannot go beyond {_PRECISION:g} (given: {amount!r})"
            )


def _runtime() -> Session:
    return _session.current_or_start()  # (a local cluster starts at the first call that needs one, as Ray's does)


def _with_options(target: Any, options: dict[str, Any], allowed: frozenset[str], what: str) -> Any:
    """A copy of a remote function or actor class with ``options`` laid over its own (checked)."""
    merged = object.__new__(type(target))
    merged.__dict__.update(target.__dict__)
    merged._options = _check_options({**target._options, **options}, allowed, what)
    return merged


def _shipped_form(obj: Any) -> Callable[[], Blob]:
    """A factory of the form a function or class travels in (cloudpickle), made once, on first use."""
    cache: list[Blob] = []

    def factory() -> Blob:
        if not cache:
            blob = serialize(obj, f"{getattr(obj, '__qualname__', obj)!r}", inline=True)
            if blob.nbytes > MAX_DEFINITION_BYTES:  # (it would not fit the one message it travels in)
                what = f"The actor {obj.__name__}" if isinstance(obj, type) else f"The remote function {obj.__qualname__}"
                raise ValueError(
                    f"{what} is too large ({blob.nbytes / 2**20:.0f} MiB pickled; at most {MAX_DEFINITION_BYTES >> 20} MiB):"
                    " it captures large values; put them with nexus.put() and pass the refs, or load them inside"
                )
            cache.append(blob)
        return cache[0]

    setattr(factory, "original", obj)  # noqa: B010  (what local mode runs: the definition itself)
    return factory


class _Definition:
    """A function or class as its cluster knows it: its id there, and the form it travels in.

    The id is a node-qualified id of the session where it is first used
    (``Session.new_id``), made again in a new session (after ``shutdown`` and
    ``init``). Not ``id(obj)``: Python reuses that once an object is gone, and
    a function defined again (a notebook cell run twice, a definition in a
    loop) would then run its predecessor's code, cached under that id in the
    workers. Copies that ``.options()`` makes share one: one definition,
    shipped once. A definition that travels in a value keeps its id, which
    the receiving worker's cluster made.
    """

    __slots__ = ("factory", "id", "session")

    def __init__(self, obj: Any, id: bytes = b"", session: Any = None) -> None:
        self.factory = _shipped_form(obj)
        self.id = id
        self.session = session if id else None

    def id_in(self, session: Any) -> bytes:
        if self.session is not session:
            self.id = session.new_id().to_bytes(12, "big")
            self.session = session
        return self.id
