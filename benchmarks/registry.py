"""The benchmark modules ``python -m benchmarks`` knows about.

To add a benchmark, write a module in this package that defines

* ``NAME``: a short name for ``--only`` (unique among the modules below), and
* ``run(quick: bool) -> BenchmarkResult``: measure and return the figures;
  with ``quick`` it must finish in a few seconds (the CI smoke run),

then append its import path to :data:`MODULES`. Modules are imported only
when they run, so one with optional dependencies costs nothing to the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from .harness import BenchmarkResult

__all__ = ["MODULES", "Benchmark", "benchmarks", "find"]

# (name, module) in the order they run; the name must equal the module's NAME.
MODULES: tuple[tuple[str, str], ...] = (
    ("limits", "benchmarks.limits"),
    ("core", "benchmarks.core_inprocess"),
    ("envelope", "benchmarks.envelope"),
    ("observe", "benchmarks.observe"),  # before Ray starts: its processes linger for seconds after shutdown
    ("views", "benchmarks.views"),
    ("cluster", "benchmarks.cluster"),
    ("store", "benchmarks.store"),
    ("microbench", "benchmarks.microbench"),
    ("pool", "benchmarks.pool"),
    ("hosts", "benchmarks.hosts"),
    ("scale", "benchmarks.scale"),
    ("bridge", "benchmarks.bridge"),
    ("services", "benchmarks.services"),
)


@dataclass(frozen=True)
class Benchmark:
    name: str
    module: str

    def load(self) -> ModuleType:
        module = importlib.import_module(self.module)
        declared = getattr(module, "NAME", None)
        if declared != self.name:
            raise RuntimeError(f"{self.module} declares NAME = {declared!r}, but the registry lists it as {self.name!r}")
        return module

    def run(self, quick: bool) -> BenchmarkResult:
        run: Callable[[bool], BenchmarkResult] = self.load().run
        return run(quick)


def benchmarks() -> list[Benchmark]:
    return [Benchmark(name, module) for name, module in MODULES]


def find(name: str) -> Benchmark | None:
    return next((bench for bench in benchmarks() if bench.name == name), None)
