"""Arguments checked against a remote function's or method's signature when it is called, as Ray does.

``f.remote(1, 2, 3)`` for a ``def f(x)`` raises ``TypeError`` at the call,
not later at ``get``. The check is made once per definition
(:class:`ArgumentCheck`) and costs a length comparison on the common path
(positional arguments only); keyword arguments go through
``inspect.Signature.bind``. A check travels with an actor handle as plain
data (parameter names, kinds and whether they have a default), so a handle
passed to a task checks its calls there too.
"""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["ArgumentCheck", "method_checks"]

_P = inspect.Parameter
_POSITIONAL = (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)
_KIND: Any = type(_P.POSITIONAL_ONLY)  # inspect's IntEnum of parameter kinds


class _Default:
    """Stands for a parameter's default value (not carried: only whether there is one)."""

    def __repr__(self) -> str:
        return "..."


_HAS_DEFAULT = _Default()

Params = tuple[tuple[str, int, bool], ...]
"""(name, kind as an int of inspect.Parameter's kinds, has a default) per parameter."""


class ArgumentCheck:
    """Raises ``TypeError`` for arguments that do not fit a signature; built from plain data, pickled as it."""

    __slots__ = ("_fast", "_max", "_min", "_params", "_signature", "_what")

    def __init__(self, params: Params, what: str) -> None:
        self._params = params
        self._what = what
        self._signature: inspect.Signature | None = None
        kinds = [kind for _, kind, _ in params]
        positional = [p for p in params if p[1] in _POSITIONAL]
        self._min = sum(1 for p in positional if not p[2])
        self._max = float("inf") if _P.VAR_POSITIONAL in kinds else len(positional)
        # positional arguments alone can be judged by their number: no keyword-only parameter needs a value
        self._fast = not any(kind == _P.KEYWORD_ONLY and not has_default for _, kind, has_default in params)

    @classmethod
    def of(cls, fn: Any, what: str, drop_first: bool = False) -> ArgumentCheck | None:
        """The check for ``fn`` (None when its signature cannot be read, as for some builtins)."""
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):
            return None
        params = list(signature.parameters.values())
        if drop_first and params and params[0].kind in _POSITIONAL:
            params = params[1:]
        return cls(tuple((p.name, int(p.kind), p.default is not _P.empty) for p in params), what)

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if not kwargs and self._fast and self._min <= len(args) <= self._max:
            return
        signature = self._signature
        if signature is None:
            signature = self._signature = inspect.Signature(
                [_P(name, _KIND(kind), default=_HAS_DEFAULT if has_default else _P.empty) for name, kind, has_default in self._params]
            )
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self._what}.remote() does not fit {self._what}{signature}: {exc}") from None

    def __reduce__(self) -> tuple[Any, ...]:
        return ArgumentCheck, (self._params, self._what)


def method_checks(cls: type, names: frozenset[str]) -> dict[str, ArgumentCheck]:
    """A check per method of an actor class (``self`` left out; static and class methods as they are called)."""
    checks: dict[str, ArgumentCheck] = {}
    for name in names:
        raw = inspect.getattr_static(cls, name, None)
        is_plain = inspect.isfunction(raw)  # not a staticmethod or classmethod: called bound, self comes first
        check = ArgumentCheck.of(getattr(cls, name), f"{cls.__qualname__}.{name}", drop_first=is_plain)
        if check is not None:
            checks[name] = check
    return checks
