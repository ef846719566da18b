"""The phi accrual failure detector (Hayashibara, Défago, Yared and Katayama, 2004), over heartbeat arrivals.

Instead of "dead after T seconds of silence", it says how sure it is: phi is
``-log10`` of the probability that a heartbeat comes later than now, given
the intervals seen so far (taken as normally distributed). phi 1 means a 10%
chance of being wrong in suspecting the peer, phi 8 a 1e-8 chance. A link
that jitters widens the distribution, so the same silence raises phi more
slowly there, and a steady link is judged quickly. As in Akka's detector, the
normal CDF is the logistic approximation, the standard deviation has a floor
(a perfectly regular link would otherwise make phi jump on the first late
beat), and an acceptable pause is added to the mean (a GC pause, a busy
host). No I/O: the caller passes the time (seconds, monotonic).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

__all__ = ["PhiAccrualDetector"]


@dataclass
class PhiAccrualDetector:
    threshold: float = 8.0  # phi at and above which the peer is suspected
    window: int = 200  # heartbeat intervals kept
    min_std: float = 0.05  # seconds: the floor of the intervals' standard deviation
    acceptable_pause: float = 0.0  # seconds added to the mean interval before phi rises
    first_interval: float = 0.5  # seconds: what to expect before the first interval is measured

    def __post_init__(self) -> None:
        if self.threshold <= 0 or self.window < 2 or self.min_std <= 0 or self.acceptable_pause < 0 or self.first_interval <= 0:
            raise ValueError(
                "a phi detector needs threshold > 0, window >= 2, min_std > 0, acceptable_pause >= 0, first_interval > 0 "
                f"(got {self.threshold}, {self.window}, {self.min_std}, {self.acceptable_pause}, {self.first_interval})"
            )
        self.intervals: deque[float] = deque(maxlen=self.window)
        self.last: float | None = None
        # (running sums, so that phi costs the same whatever the window)
        self._sum = 0.0
        self._squares = 0.0

    def heartbeat(self, now: float) -> None:
        """A heartbeat arrived at ``now``."""
        if self.last is None:
            # Seed the history with the expected interval (and a spread of a quarter of it), as Akka does:
            # the first silence is judged against something.
            for value in (self.first_interval - self.first_interval / 4, self.first_interval + self.first_interval / 4):
                self._add(value)
        elif now >= self.last:
            self._add(now - self.last)
        self.last = now

    def _add(self, interval: float) -> None:
        if len(self.intervals) == self.intervals.maxlen:
            old = self.intervals[0]
            self._sum -= old
            self._squares -= old * old
        self.intervals.append(interval)
        self._sum += interval
        self._squares += interval * interval

    @property
    def mean(self) -> float:
        return self._sum / len(self.intervals) if self.intervals else self.first_interval

    @property
    def std(self) -> float:
        n = len(self.intervals)
        if n < 2:
            return self.min_std
        variance = max(0.0, self._squares / n - (self._sum / n) ** 2)
        return max(math.sqrt(variance), self.min_std)

    def phi(self, now: float) -> float:
        """How sure the detector is that the peer is gone (0 before its first heartbeat)."""
        if self.last is None:
            return 0.0
        elapsed = now - self.last
        mean = self.mean + self.acceptable_pause
        y = (elapsed - mean) / self.std
        exponent = max(-700.0, min(700.0, -y * (1.5976 + 0.070566 * y * y)))  # (the logistic approximation of the
        e = math.exp(exponent)  # normal CDF; clamped where a float overflows: phi is then 0 or beyond any threshold)
        if elapsed > mean:
            return -math.log10(e / (1.0 + e))
        return max(0.0, -math.log10(1.0 - 1.0 / (1.0 + e)))

    def suspected(self, now: float) -> bool:
        return self.phi(now) >= self.threshold
