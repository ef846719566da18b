"""A task's failure as its caller sees it: the task's own exception, and a :class:`TaskError` too (Ray's
``RayTaskError`` with ``as_instanceof_cause``).

What a task or method raised arrives at ``get`` as an instance of a class
made once for its type: a subclass of both that type and :class:`TaskError`,
under the same name, with the same arguments, attributes and message. So
``except ValueError`` catches it, as does ``except TaskError`` (or Ray's
``except RayTaskError``); ``error.cause`` is the exception as it was raised,
and the remote traceback is its ``__cause__``. A plain ``Exception`` (or a
NexusError: a type TaskError already derives from) arrives as a TaskError with
the same arguments. A type that cannot be subclassed (a "final" class, one
whose layout cannot be combined, or whose instances do not take new
attributes) arrives as a TaskError only, with a warning, as in Ray: its
``cause`` is the exception raised. An exception that does not pickle arrives
as a TaskError whose ``cause`` is a NexusError saying so
(:func:`unserializable_task_error`).
"""

from __future__ import annotations

import logging
from typing import Any

from ..core.errors import NexusError

__all__ = ["RemoteTraceback", "TaskError", "as_task_error", "unserializable_task_error"]

logger = logging.getLogger(__name__)


class TaskError(NexusError):
    """A remote task or method raised: the error at ``get`` is also an instance of the type it raised (``cause``
    is that exception itself), or, when that exception cannot travel, a TaskError saying what it was.

    Made as any exception (``TaskError("message")``), or with Ray's ``RayTaskError`` keywords
    (``function_name``, ``traceback_str``, ``cause``, ``proctitle``, ``pid``, ``ip``, ``actor_repr``,
    ``actor_id``; Ray's positional form is not taken): only the keywords given are set on the instance (the
    class gives None for the others), and without a message one is made of them. A ``cause`` that does not
    pickle is replaced by a NexusError saying so, as Ray's is, so that the error itself always pickles.
    """

    cause: BaseException | None = None
    function_name: str | None = None
    traceback_str: str | None = None
    proctitle: str | None = None
    pid: int | None = None
    ip: str | None = None
    actor_repr: str | None = None
    actor_id: str | None = None

    def __init__(
        self,
        *args: object,
        function_name: str | None = None,
        traceback_str: str | None = None,
        cause: BaseException | None = None,
        proctitle: str | None = None,
        pid: int | None = None,
        ip: str | None = None,
        actor_repr: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        # (also the next __init__ of a user's type's derived class, whose own __init__ calls super().__init__(...):
        # the positional arguments are then the user's, and nothing else is set)
        if cause is not None:
            cause = _travelling(cause)
        if not args and (function_name or traceback_str or cause is not None):
            args = (_message(function_name, traceback_str, cause),)
        super().__init__(*args)
        given = {
            "function_name": function_name,
            "traceback_str": traceback_str,
            "cause": cause,
            "proctitle": proctitle,
            "pid": pid,
            "ip": ip,
            "actor_repr": actor_repr,
            "actor_id": actor_id,
        }
        self.__dict__.update({k: v for k, v in given.items() if v is not None})

    def make_dual_exception_instance(self) -> Exception:
        """Ray's name: the error as an instance of both its cause's type and TaskError (itself without a cause,
        or when the cause's type cannot be subclassed)."""
        cause = self.cause
        if not isinstance(cause, Exception) or isinstance(self, type(cause)):
            return self
        made = as_task_error(cause)
        return made if isinstance(made, type(cause)) else self

    as_instanceof_cause = make_dual_exception_instance  # (Ray's other name for it)


def _message(function_name: str | None, traceback_str: str | None, cause: BaseException | None) -> str:
    head = f"{function_name or 'a task'} raised"
    if cause is not None:
        head += f" {type(cause).__qualname__}: {cause}"
    return f"{head}\n{traceback_str}" if traceback_str else head


def _travelling(cause: BaseException) -> BaseException:
    """``cause`` if it pickles (as values travel: cloudpickle), else a NexusError saying that it does not."""
    import cloudpickle  # (here: importing nexus does not import it)

    try:
        cloudpickle.dumps(cause)
        return cause
    except Exception as exc:
        return NexusError(
            f"The original cause of the TaskError ({type(cause).__module__}.{type(cause).__qualname__}: {cause}) "
            f"isn't serializable: {exc}. Overwriting the cause to a NexusError (Ray's RayError)."
        )


def unserializable_task_error(type_name: str, message: str, where: str, reason: str = "") -> TaskError:
    """The error at ``get`` for an exception raised in ``where`` that could not travel (it does not pickle, or
    not back): a TaskError whose ``cause`` is a NexusError saying so (as Ray's: ``isn't serializable``)."""
    said = f"The original cause of the TaskError ({type_name}: {message}) isn't serializable" + (f": {reason}" if reason else "")
    error = TaskError(f"{type_name}: {message} (raised in {where}; the exception itself does not pickle)")
    error.__dict__["cause"] = NexusError(said + ". Overwriting the cause to a NexusError (Ray's RayError).")
    return error


class RemoteTraceback(Exception):
    """The traceback of an exception raised in another process; set as the ``__cause__`` of the re-raised error."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


def as_task_error(exc: Exception) -> Exception:
    """``exc`` as an instance of both its own type and :class:`TaskError`; a TaskError with ``exc`` as its
    ``cause`` if it cannot be (a warning says so, as Ray's does)."""
    if isinstance(exc, TaskError):
        return exc
    if issubclass(TaskError, type(exc)):  # (Exception, NexusError: a TaskError is one already, as in Ray)
        return _only_task_error(exc, exc.args)
    derived = _derived(type(exc))
    made = None if derived is None else _as_unpickling_would(exc, derived)
    if made is None and derived is not None:
        try:
            made = derived.__new__(derived, *exc.args)
            made.__dict__.update(getattr(exc, "__dict__", {}))
            made.args = exc.args
        except Exception:  # (a __new__ that wants other arguments, instances without a __dict__)
            made = None
    if made is None:
        logger.warning(
            "User exception type %s.%s in TaskError can't be subclassed! This exception is raised as RayTaskError "
            "only. You can use `ray_task_error.cause` to access the user exception.",
            type(exc).__module__,
            type(exc).__qualname__,
        )
        return _only_task_error(exc, (f"{type(exc).__qualname__}: {exc}",))
    made.__dict__["_nexus_cause"] = exc
    if "cause" not in made.__dict__:  # (an exception's own ``cause`` stays its own)
        made.__dict__["cause"] = exc
    return made


def _only_task_error(exc: Exception, args: tuple[Any, ...]) -> TaskError:
    error = TaskError(*args)
    error.__dict__.update(getattr(exc, "__dict__", {}))
    if "cause" not in error.__dict__:
        error.__dict__["cause"] = exc  # (it came here by pickle: it travels; not checked again)
    return error


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
