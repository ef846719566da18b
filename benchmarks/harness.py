"""What every benchmark module shares: targets, figures, results and the alternating-rounds loop.

A benchmark module measures a few *figures* (rates, higher is better) for
Nexus and, where there is one, for a peer library, and returns a
:class:`BenchmarkResult`. Each figure may carry a :class:`Target`: either a
ratio over the peer (``Target.ratio(5)``: Nexus at least 5x the peer) or an
absolute Nexus rate (``Target.at_least(300_000, "msgs/s")``). Whether a target
is met is reported, never enforced: benchmarks report, they do not gate.

:func:`alternate_rounds` runs the sides of every figure in turn, swapping
which side goes first each round, so slow drift of the machine (frequency
scaling, other load) falls on both sides alike.
"""

from __future__ import annotations

import gc
import math
import os
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BenchmarkError",
    "BenchmarkResult",
    "Figure",
    "Target",
    "alternate_rounds",
    "format_number",
    "progress",
    "rate",
    "versus_ray",
]


SPREAD = 1.5  # a side whose best round beats its worst by more than this factor gets a note


class BenchmarkError(RuntimeError):
    """A benchmark could not produce a valid figure (e.g. a message was lost); not a missed target."""


@dataclass(frozen=True)
class Target:
    """What a figure should reach: ``kind`` is ``"ratio"`` (Nexus / peer) or ``"absolute"`` (Nexus alone)."""

    kind: str
    value: float
    unit: str = ""

    @classmethod
    def ratio(cls, times: float) -> Target:
        return cls("ratio", float(times))

    @classmethod
    def at_least(cls, value: float, unit: str) -> Target:
        return cls("absolute", float(value), unit)

    def describe(self, peer: str) -> str:
        if self.kind == "ratio":
            return f">= {self.value:g}x {peer}"
        return f">= {format_number(self.value)} {self.unit}".rstrip()

    def met(self, nexus: float, ratio: float | None) -> bool | None:
        """True/False, or None when it cannot be judged (a ratio target without a peer figure)."""
        if self.kind == "ratio":
            return None if ratio is None else ratio >= self.value
        return nexus >= self.value

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value, "unit": self.unit or None}


@dataclass
class Figure:
    """One measured quantity (a rate: higher is better), for Nexus and optionally the peer.

    ``nexus_samples`` / ``peer_samples`` hold one value per round; the headline
    value of each side is the ``aggregate`` (``"median"`` or ``"best"``) of them.
    """

    key: str
    label: str
    unit: str
    nexus_samples: list[float]
    peer_samples: list[float] | None = None
    target: Target | None = None
    aggregate: str = "median"

    def _reduce(self, samples: Sequence[float]) -> float:
        if self.aggregate == "best":
            return max(samples)
        return float(statistics.median(samples))

    @property
    def nexus(self) -> float:
        return self._reduce(self.nexus_samples)

    @property
    def peer(self) -> float | None:
        return self._reduce(self.peer_samples) if self.peer_samples else None

    @property
    def ratio(self) -> float | None:
        peer = self.peer
        return self.nexus / peer if peer else None

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.nexus, self.ratio)

    def to_json(self, peer_name: str, peer_label: str) -> dict[str, Any]:
        return {
            "label": self.label,
            "unit": self.unit,
            "aggregate": self.aggregate,
            "nexus": self.nexus,
            peer_name: self.peer,
            "ratio": self.ratio,
            "target": self.target.to_json() if self.target else None,
            "target_text": self.target.describe(peer_label) if self.target else None,
            "met": self.met,
            "samples": {"nexus": list(self.nexus_samples), peer_name: list(self.peer_samples) if self.peer_samples else None},
        }


@dataclass
class BenchmarkResult:
    """What a benchmark module's ``run(quick)`` returns."""

    name: str
    title: str
    figures: list[Figure]
    peer: str = "pykka"  # key of the peer in JSON
    peer_label: str = "Pykka"  # column heading in tables
    peer_available: bool = True
    method: str = ""  # one line: how the headline figures were obtained
    notes: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)

    def spread_notes(self) -> list[str]:
        """Notes on figures whose rounds disagree widely, so a reader knows the headline hides a spread."""
        notes = []
        for figure in self.figures:
            for side, samples in (("Nexus", figure.nexus_samples), (self.peer_label, figure.peer_samples)):
                if samples and min(samples) > 0 and max(samples) / min(samples) > SPREAD:
                    unit = f" {figure.unit}" if figure.unit else ""
                    notes.append(
                        f"{side} {figure.label}: rounds ranged {format_number(min(samples))}"
                        f" to {format_number(max(samples))}{unit} ({figure.aggregate} used)"
                    )
        return notes

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "method": self.method,
            "peer": self.peer,
            "peer_available": self.peer_available,
            "environment": self.environment,
            "figures": {figure.key: figure.to_json(self.peer, self.peer_label) for figure in self.figures},
            "notes": [*self.spread_notes(), *self.notes],
        }


def format_number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def progress(message: str) -> None:
    """Progress for people watching; on stderr so that ``--json`` keeps stdout to one object."""
    print(message, file=sys.stderr, flush=True)


def rate(count: int, seconds: float) -> float:
    """``count`` events in ``seconds`` as events per second."""
    if seconds <= 0:
        raise BenchmarkError(f"timer resolution too coarse: {count} events in {seconds} s")
    return count / seconds


def alternate_rounds(
    figures: Sequence[tuple[str, Mapping[str, Callable[[], float]]]],
    rounds: int,
    label: str = "",
) -> dict[str, dict[str, list[float]]]:
    """Run every side of every figure once per round; return ``{figure: {side: [one value per round]}}``.

    ``figures`` is a sequence of ``(figure key, {side name: measure})``; a
    measure sets up, warms up, times and tears down one run and returns its
    rate. Within a round the figures run in the order given; the order of the
    sides is reversed on every other round. A full collection runs before each
    measure, so garbage from the previous one is not collected on its clock.
    """
    samples: dict[str, dict[str, list[float]]] = {key: {side: [] for side in sides} for key, sides in figures}
    for number in range(rounds):
        if label:
            progress(f"{label}: round {number + 1}/{rounds}")
        for key, sides in figures:
            order = list(sides)
            if number % 2:
                order.reverse()
            for side in order:
                gc.collect()
                samples[key][side].append(sides[side]())
    return samples


def peer_result(
    name: str,
    title: str,
    figures: list[Figure],
    peer: str,
    peer_label: str,
    quick: bool,
    method: str,
    notes: list[str] | None = None,
    available: bool = True,
    **environment: Any,
) -> BenchmarkResult:
    """The result of a benchmark measured beside ``peer``; ``environment`` adds to the Python version and cores."""
    notes = list(notes or [])
    if quick:
        notes.append("--quick: short runs for a smoke test; do not quote these figures")
    return BenchmarkResult(
        name=name,
        title=title,
        figures=figures,
        peer=peer,
        peer_label=peer_label,
        peer_available=available,
        method=method,
        notes=notes,
        environment={"python": sys.version.split()[0], "cpus": os.cpu_count(), **environment},
    )


def versus_ray(name: str, title: str, figures: list[Figure], ray: Any, quick: bool, method: str, notes: list[str]) -> BenchmarkResult:
    """The result of a benchmark measured beside Ray (``ray`` is the module, or None when it is not installed)."""
    version = getattr(ray, "__version__", "not installed")
    return peer_result(name, title, figures, "ray", "Ray", quick, method, notes, available=ray is not None, ray=version)


def timed_loop(n: int, body: Any) -> float:
    """Rate of ``body()`` over ``n`` calls, after an untimed warm-up of ``n / 10`` (at least 5)."""
    import time

    for _ in range(max(n // 10, 5)):
        body()
    start = time.perf_counter()
    for _ in range(n):
        body()
    return rate(n, time.perf_counter() - start)
