"""Supervision declared as data, and the builder that assembles it.

``FailureStrategy`` says *what* a supervisor does (its scope and which
directive each exception type gets); ``LifecyclePolicy`` says *how often and
how fast* children may come back (restart limits, backoff). Both are frozen
dataclasses -- printable, comparable, and easy to keep in configuration.
:class:`SupervisorBuilder` reads fluently and produces the strategy object::

    strategy = (SupervisorBuilder()
                .all_for_one()
                .on(ValueError, Directive.RESUME)
                .on(KeyError, Directive.STOP)
                .otherwise(Directive.RESTART)
                .restarts(3, within=10.0)
                .build())
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from .strategies import AllForOneStrategy, ExponentialBackoffStrategy, OneForOneStrategy, decider_from_rules
from .supervision import Directive, SupervisorStrategy

__all__ = ["Backoff", "FailureStrategy", "LifecyclePolicy", "Scope", "SupervisorBuilder"]


class Scope(enum.Enum):
    ONE_FOR_ONE = "one-for-one"  # the directive applies to the failed child
    ALL_FOR_ONE = "all-for-one"  # restart/stop apply to all children of the supervisor


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay restarts: ``initial * multiplier**(n-1)`` for the n-th failure in a streak, capped."""

    initial: float = 0.1
    maximum: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.1
    reset_after: float | None = 30.0


@dataclass(frozen=True, slots=True)
class FailureStrategy:
    """Which directive a failure gets, and to which children it applies."""

    scope: Scope = Scope.ONE_FOR_ONE
    rules: tuple[tuple[type[BaseException], Directive], ...] = ()
    default: Directive = Directive.RESTART
    escalate_when_exhausted: bool = False


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    """At most ``max_restarts`` restarts within ``within`` seconds (None: no limit), with optional backoff."""

    max_restarts: int | None = 10
    within: float | None = 10.0
    backoff: Backoff | None = None


@dataclass(frozen=True)
class SupervisorBuilder:
    """Assembles a SupervisorStrategy from a FailureStrategy and a LifecyclePolicy."""

    failure: FailureStrategy = field(default_factory=FailureStrategy)
    lifecycle: LifecyclePolicy = field(default_factory=LifecyclePolicy)

    def one_for_one(self) -> SupervisorBuilder:
        return replace(self, failure=replace(self.failure, scope=Scope.ONE_FOR_ONE))

    def all_for_one(self) -> SupervisorBuilder:
        return replace(self, failure=replace(self.failure, scope=Scope.ALL_FOR_ONE))

    def on(self, exc_type: type[BaseException], directive: Directive) -> SupervisorBuilder:
        if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
            raise TypeError(f"on() takes an exception class, got {exc_type!r}")
        return replace(self, failure=replace(self.failure, rules=(*self.failure.rules, (exc_type, directive))))

    def otherwise(self, directive: Directive) -> SupervisorBuilder:
        return replace(self, failure=replace(self.failure, default=directive))

    def escalate_when_exhausted(self, escalate: bool = True) -> SupervisorBuilder:
        return replace(self, failure=replace(self.failure, escalate_when_exhausted=escalate))

    def restarts(self, max_restarts: int | None, within: float | None = None) -> SupervisorBuilder:
        return replace(self, lifecycle=replace(self.lifecycle, max_restarts=max_restarts, within=within))

    def backoff(
        self, initial: float = 0.1, maximum: float = 10.0, multiplier: float = 2.0, jitter: float = 0.1, reset_after: float | None = 30.0
    ) -> SupervisorBuilder:
        return replace(self, lifecycle=replace(self.lifecycle, backoff=Backoff(initial, maximum, multiplier, jitter, reset_after)))

    def build(self) -> SupervisorStrategy:
        failure, lifecycle = self.failure, self.lifecycle
        decider = decider_from_rules(failure.rules, failure.default)
        common = dict(
            decider=decider,
            max_restarts=lifecycle.max_restarts,
            within=lifecycle.within,
            escalate_when_exhausted=failure.escalate_when_exhausted,
        )
        if lifecycle.backoff is not None:
            if failure.scope is Scope.ALL_FOR_ONE:
                raise ValueError("backoff applies to one-for-one supervision; all-for-one restarts at once")
            b = lifecycle.backoff
            return ExponentialBackoffStrategy(b.initial, b.maximum, b.multiplier, b.jitter, b.reset_after, **common)  # type: ignore[arg-type]
        if failure.scope is Scope.ALL_FOR_ONE:
            return AllForOneStrategy(**common)  # type: ignore[arg-type]
        return OneForOneStrategy(**common)  # type: ignore[arg-type]
