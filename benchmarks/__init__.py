"""Benchmarks of Nexus, measured side by side with peer libraries in the same run.

Run them with ``python -m benchmarks`` (``--only NAME``, ``--quick``,
``--json``; see :mod:`benchmarks.runner`). Each benchmark is a module listed
in :mod:`benchmarks.registry` that exposes ``NAME`` and
``run(quick) -> BenchmarkResult``; :mod:`benchmarks.harness` has the shared
pieces (figures, targets, the alternating-rounds loop). Targets are reported,
never enforced.
"""

from .harness import BenchmarkError, BenchmarkResult, Figure, Target, alternate_rounds

__all__ = ["BenchmarkError", "BenchmarkResult", "Figure", "Target", "alternate_rounds"]
