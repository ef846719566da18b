"""Supervisor strategies: one-for-one, all-for-one, and exponential backoff."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from .supervision import Directive, RestartStatistics, Supervisor

if TYPE_CHECKING:
    from .ref import ActorRef

__all__ = ["AllForOneStrategy", "Decider", "ExponentialBackoffStrategy", "OneForOneStrategy", "decider_from_rules"]

Decider = Callable[[BaseException], Directive]

MAX_COUNTED_RESTARTS = 1000  # RestartStatistics remembers the last 1024 failures


def decider_from_rules(
    rules: Mapping[type[BaseException], Directive] | Iterable[tuple[type[BaseException], Directive]],
    default: Directive = Directive.RESTART,
) -> Decider:
    """A decider that picks the rule of the closest matching exception type (by MRO).

    Exceptions outside ``Exception`` (KeyboardInterrupt, SystemExit) escalate
    unless a rule names them.
    """
    table = dict(rules.items() if isinstance(rules, Mapping) else rules)

    def decide(reason: BaseException) -> Directive:
        for cls in type(reason).__mro__:
            directive = table.get(cls)
            if directive is not None:
                return directive
        return default if isinstance(reason, Exception) else Directive.ESCALATE

    return decide


def _default_decider(reason: BaseException) -> Directive:
    return Directive.RESTART if isinstance(reason, Exception) else Directive.ESCALATE


class _StrategyBase:
    def __init__(
        self,
        decider: Decider | None = None,
        max_restarts: int | None = 10,
        within: float | None = 10.0,
        escalate_when_exhausted: bool = False,
    ) -> None:
        if max_restarts is not None and not 0 <= max_restarts <= MAX_COUNTED_RESTARTS:
            raise ValueError(
                f"max_restarts must be between 0 and {MAX_COUNTED_RESTARTS}, or None for unlimited; got {max_restarts}"
            )
        if within is not None and within <= 0:
            raise ValueError(f"within must be a positive number of seconds or None, got {within}")
        self.decider = decider or _default_decider
        self.max_restarts = max_restarts
        self.within = within
        self.escalate_when_exhausted = escalate_when_exhausted

    def _may_restart(self, stats: RestartStatistics, now: float) -> bool:
        """Record the failure; return whether one more restart stays within the limit."""
        stats.record_failure(now)
        if self.max_restarts is None:
            return True
        return stats.failures_within(self.within, now) <= self.max_restarts

    def _exhausted(self, supervisor: Supervisor, targets: tuple[ActorRef, ...], reason: BaseException, message: Any) -> Directive:
        if self.escalate_when_exhausted:
            supervisor.escalate_failure(reason, message)
            return Directive.ESCALATE
        supervisor.stop_children(*targets)
        return Directive.STOP

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_restarts={self.max_restarts}, within={self.within})"


class OneForOneStrategy(_StrategyBase):
    """Apply the directive to the failed child only."""

    def handle_failure(
        self, supervisor: Supervisor, child: ActorRef, stats: RestartStatistics, reason: BaseException, message: Any, now: float
    ) -> Directive:
        directive = self.decider(reason)
        if directive is Directive.RESUME:
            supervisor.resume_children(child)
        elif directive is Directive.RESTART:
            if not self._may_restart(stats, now):
                return self._exhausted(supervisor, (child,), reason, message)
            supervisor.restart_children(reason, child)
        elif directive is Directive.STOP:
            supervisor.stop_children(child)
        else:
            supervisor.escalate_failure(reason, message)
        return directive


class AllForOneStrategy(_StrategyBase):
    """Apply RESTART and STOP to every child of the supervisor; RESUME to the failed one."""

    def handle_failure(
        self, supervisor: Supervisor, child: ActorRef, stats: RestartStatistics, reason: BaseException, message: Any, now: float
    ) -> Directive:
        directive = self.decider(reason)
        siblings = tuple(supervisor.child_refs())
        if directive is Directive.RESUME:
            supervisor.resume_children(child)
        elif directive is Directive.RESTART:
            if not self._may_restart(stats, now):
                return self._exhausted(supervisor, siblings, reason, message)
            supervisor.restart_children(reason, *siblings)
        elif directive is Directive.STOP:
            supervisor.stop_children(*siblings)
        else:
            supervisor.escalate_failure(reason, message)
        return directive


class ExponentialBackoffStrategy(_StrategyBase):
    """Restart the failed child after a delay that doubles with each failure.

    Failures further apart than ``reset_after`` seconds start again from
    ``initial``. The delay is capped at ``maximum`` and spread by ``jitter``
    (a fraction) so that many failing actors do not restart in lockstep.
    """

    def __init__(
        self,
        initial: float = 0.1,
        maximum: float = 10.0,
        multiplier: float = 2.0,
        jitter: float = 0.1,
        reset_after: float | None = 30.0,
        decider: Decider | None = None,
        max_restarts: int | None = None,
        within: float | None = None,
        escalate_when_exhausted: bool = False,
    ) -> None:
        super().__init__(decider, max_restarts, within, escalate_when_exhausted)
        if initial <= 0 or maximum < initial or multiplier < 1 or not 0 <= jitter < 1:
            raise ValueError(
                "backoff needs 0 < initial <= maximum, multiplier >= 1 and 0 <= jitter < 1; "
                f"got initial={initial}, maximum={maximum}, multiplier={multiplier}, jitter={jitter}"
            )
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = jitter
        self.reset_after = reset_after
        self._random = random.Random()

    def delay_for(self, stats: RestartStatistics, now: float) -> float:
        """The backoff before the next restart (the failure at ``now`` already recorded)."""
        streak = stats.failures_within(self.reset_after, now) if self.reset_after is not None else stats.failure_count
        delay = min(self.initial * self.multiplier ** max(streak - 1, 0), self.maximum)
        if self.jitter:
            delay *= 1 + self._random.uniform(-self.jitter, self.jitter)
        return delay

    def handle_failure(
        self, supervisor: Supervisor, child: ActorRef, stats: RestartStatistics, reason: BaseException, message: Any, now: float
    ) -> Directive:
        directive = self.decider(reason)
        if directive is Directive.RESUME:
            supervisor.resume_children(child)
        elif directive is Directive.RESTART:
            if not self._may_restart(stats, now):
                return self._exhausted(supervisor, (child,), reason, message)
            supervisor.restart_children(reason, child, delay=self.delay_for(stats, now))
        elif directive is Directive.STOP:
            supervisor.stop_children(child)
        else:
            supervisor.escalate_failure(reason, message)
        return directive
