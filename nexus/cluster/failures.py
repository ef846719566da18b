"""A task's failure as its caller sees it: the task's own exception, and a :class:`TaskError` too (Ray's
``RayTaskError`` with ``as_instanceof_cause``).

What a task or method raised arrives at ``get`` as an instance of a class
made once for its type: a subclass of both that type and :class:`TaskError`,
under the same name, with the same arguments, attributes and message. So
``except ValueError`` catches it, as does ``except TaskError`` (or Ray's
``except RayTaskError``); ``error.cause`` is the exception as it was raised,
and the remote traceback is its ``__cause__``. A type that cannot be
subclassed (or whose instances do not take new attributes) arrives as itself.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import NexusError

__all__ = ["RemoteTraceback", "TaskError", "as_task_error"]


class TaskError(NexusError):
    """A remote task or method raised: the error at ``get`` is also an instance of the type it raised (``cause``
    is that exception itself), or, when that exception cannot travel, a TaskError saying what it was."""

    cause: BaseException | None = None


class RemoteTraceback(Exception):
    """The traceback of an exception raised in another process; set as the ``__cause__`` of the re-raised error."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


def as_task_error(exc: Exception) -> Exception:
    """``exc`` as an instance of both its own type and :class:`TaskError` (``exc`` itself if it cannot be)."""
    if isinstance(exc, TaskError):
        return exc
    derived = _derived(type(exc))
    if derived is None:
        return exc
    made = _as_unpickling_would(exc, derived)
    if made is None:
        try:
            made = derived.__new__(derived, *exc.args)
            made.__dict__.update(getattr(exc, "__dict__", {}))
            made.args = exc.args
        except Exception:  # (a __new__ that wants other arguments, instances without a __dict__)
            return exc
    made.__dict__["_nexus_cause"] = exc
    if "cause" not in made.__dict__:  # (an exception's own ``cause`` stays its own)
        made.__dict__["cause"] = exc
    return made


def _as_unpickling_would(exc: Exception, derived: type[Exception]) -> Any:
    """``exc`` made again as an instance of ``derived`` the way pickle makes it (its constructor's arguments and
    its state: an OSError's filename, a UnicodeError's fields); None if its reduction is not of that form."""
    try:
        reduced = exc.__reduce_ex__(2)
        if not (isinstance(reduced, tuple) and len(reduced) >= 2 and reduced[0] is type(exc)):
            return None
        made: Any = derived(*reduced[1])
        state = reduced[2] if len(reduced) > 2 else None
        if isinstance(state, dict):
            made.__dict__.update(state)
        made.args = exc.args
        return made
    except Exception:
        return None


_made: dict[type[Exception], type[Exception] | None] = {}  # (one class a type: isinstance and except stay cheap)


def _derived(cls: type[Exception]) -> type[Exception] | None:
    if cls in _made:
        return _made[cls]
    try:
        derived: type[Exception] | None = type(
            cls.__name__, (cls, TaskError), {"__module__": cls.__module__, "__qualname__": cls.__qualname__, "__reduce__": _reduce}
        )
    except Exception:  # (a final type, one whose layout cannot be combined, an __init_subclass__ that refuses)
        derived = None
    if len(_made) < 4096:  # (types made at run time, without end: made again each time past that)
        _made[cls] = derived
    return derived


def _reduce(self: Any) -> Any:
    """Pickled as the exception that was raised; it becomes a TaskError again where it is raised again."""
    return (_again, (self.__dict__["_nexus_cause"],))


def _again(cause: Exception) -> Exception:
    return as_task_error(cause)
