"""``python -m benchmarks.ab --base REV [--only cluster,store] [--rounds N] [--quick] [--json FILE]``.

Compares the figures of this tree (the working tree, uncommitted edits included) with those of commit ``REV``,
measured in one run.

Method: ``REV`` is checked out as a git worktree in a temporary folder (removed at the end, on errors and on
Ctrl-C too). Rounds then alternate old, new, old, new, ...: in each, per benchmark, one fresh ``python -m
benchmarks --only NAME --json`` subprocess runs with cwd and ``PYTHONPATH`` set to the old tree, then one with
them set to this tree. Both put that tree ahead of the editable install on ``sys.path``, for ``nexus`` and
``transports`` alike, and the worker processes inherit them; a pre-check runs a task and asserts where the
driver and a worker import both from. Alternating spreads slow drift of the machine's load (other jobs,
frequency scaling) over both sides instead of favouring whichever ran in a quiet spell; taking the median of
each side's rounds (each round's value is already the benchmark's median of its own inner rounds) keeps one
disturbed round from moving the result.

The ratio is median(new) / median(old) for rates (every figure of the benchmarks is one, higher is better;
init is shown as 1/s), the inverse for a unit of time, so > 1 means the new code is better; below 0.90 (more
than 10% worse) is flagged. The exit status is 0 unless something failed to run: this reports, it does not gate.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from subprocess import PIPE
from typing import Any

from .harness import format_number, progress
from .registry import find

__all__ = ["main"]

NEW_TREE = Path(__file__).resolve().parents[1]
WORSE = 0.90  # an oriented ratio below this is flagged: more than 10% worse
LOWER_IS_BETTER = {"s", "ms", "us", "µs", "ns"}  # units of latencies; every other unit is a rate

WHERE_SCRIPT = """
import json, benchmarks, nexus, transports
nexus.init(num_cpus=1)
@nexus.remote
def where():
    import nexus, transports
    return {"worker nexus": nexus.__file__, "worker transports": transports.__file__}
found = nexus.get(where.remote())
nexus.shutdown()
found.update({"benchmarks": benchmarks.__file__, "nexus": nexus.__file__, "transports": transports.__file__})
print(json.dumps(found))
"""


class RunFailed(RuntimeError):
    """A step of the comparison could not run; the message says which and why."""


@dataclass
class Comparison:
    """One figure of one benchmark: its headline value in every old round and every new round."""

    benchmark: str
    key: str
    label: str
    unit: str
    old: list[float] = field(default_factory=list)
    new: list[float] = field(default_factory=list)

    @property
    def higher_is_better(self) -> bool:
        return self.unit not in LOWER_IS_BETTER

    def median(self, side: str) -> float | None:
        samples: list[float] = getattr(self, side)
        return statistics.median(samples) if samples else None

    @property
    def ratio(self) -> float | None:
        """median(new) / median(old) for rates, the inverse for latencies: > 1 means the new code is better."""
        old, new = self.median("old"), self.median("new")
        if not old or not new:
            return None
        return new / old if self.higher_is_better else old / new

    @property
    def spread(self) -> float:
        """The widest disagreement among one side's rounds (max / min - 1), to judge a ratio against."""
        return max((max(s) / min(s) - 1 for s in (self.old, self.new) if s and min(s) > 0), default=0.0)

    @property
    def worse(self) -> bool:
        return self.ratio is None or self.ratio < WORSE

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "higher_is_better": self.higher_is_better,
            "old_median": self.median("old"),
            "new_median": self.median("new"),
            "ratio": self.ratio,
            "spread": self.spread,
            "worse": self.worse,
        }


def _git(*args: str) -> str:
    proc = subprocess.run(["git", "-C", str(NEW_TREE), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RunFailed(f"git {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout.strip()


@contextlib.contextmanager
def _worktree(commit: str) -> Iterator[Path]:
    """A detached worktree of ``commit`` in a temporary folder, removed (with git's record of it) on leaving."""
    with tempfile.TemporaryDirectory(prefix="nexus-ab-") as folder:
        tree = Path(folder) / "base"
        try:
            _git("worktree", "add", "--detach", str(tree), commit)
            yield tree
        finally:
            with contextlib.suppress(RunFailed):
                _git("worktree", "remove", "--force", str(tree))
    with contextlib.suppress(RunFailed):
        _git("worktree", "prune")


def _run(tree: Path, command: list[str], what: str) -> str:
    """stdout of ``python COMMAND`` run in ``tree`` with only ``tree`` first on the path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")])))
    # A session of its own: a Ctrl-C at the terminal reaches the benchmark once, from here, not also mid-shutdown.
    popen = subprocess.Popen([sys.executable, *command], cwd=tree, env=env, stdout=PIPE, stderr=PIPE, text=True, start_new_session=True)
    with popen as proc:
        try:
            stdout, stderr = proc.communicate()
        except BaseException:  # Ctrl-C or SIGTERM: let the benchmark shut its cluster down, then go on leaving
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
    if proc.returncode != 0:
        raise RunFailed(f"{what} exited with status {proc.returncode}:\n{stderr[-3000:]}")
    return stdout


def _check_imports(tree: Path, side: str) -> None:
    found: dict[str, str] = json.loads(_run(tree, ["-c", WHERE_SCRIPT], f"{side} import check").splitlines()[-1])
    stray = {name: path for name, path in found.items() if not Path(path).resolve().is_relative_to(tree.resolve())}
    if stray:
        raise RunFailed(f"the {side} side must import from {tree}, but imports {stray}")
    progress(f"ab: {side} side imports from {tree} (driver and worker)")


def _measure(old_tree: Path, names: list[str], rounds: int, quick: bool) -> list[Comparison]:
    comparisons: dict[tuple[str, str], Comparison] = {}
    for number in range(rounds):
        for name in names:
            for side, tree in (("old", old_tree), ("new", NEW_TREE)):
                started = time.perf_counter()
                with tempfile.TemporaryDirectory(prefix="nexus-ab-out-") as out:  # not the tree's benchmarks/results/
                    command = ["-m", "benchmarks", "--only", name, "--json", "--out", out, *(["--quick"] if quick else [])]
                    document = json.loads(_run(tree, command, f"{side} {name}"))
                if document["errors"]:
                    raise RunFailed(f"{side} {name} failed: {document['errors']}")
                figures: dict[str, Any] = document["benchmarks"][name]["figures"]
                progress(f"ab: round {number + 1}/{rounds}, {name}, {side}: {time.perf_counter() - started:.1f} s")
                for key, figure in figures.items():
                    entry = comparisons.setdefault((name, key), Comparison(name, key, figure["label"], figure["unit"]))
                    getattr(entry, side).append(float(figure["nexus"]))
    return list(comparisons.values())


def _table(comparisons: list[Comparison]) -> str:
    def value(c: Comparison, side: str) -> str:
        median = c.median(side)
        return "-" if median is None else f"{format_number(median)} {c.unit}".rstrip()

    headings = ["benchmark", "figure", "old", "new", "new vs old", "spread", ""]
    rows = [
        [
            c.benchmark,
            c.label,
            value(c, "old"),
            value(c, "new"),
            f"{c.ratio:.3f}" if c.ratio is not None else "-",
            f"{c.spread:.0%}",
            "MISSING" if c.ratio is None else "WORSE" if c.worse else "",
        ]
        for c in comparisons
    ]
    widths = [max(len(row[i]) for row in [headings, *rows]) for i in range(len(headings))]

    def line(cells: list[str]) -> str:
        cells = [cell.rjust(w) if 2 <= i <= 5 else cell.ljust(w) for i, (cell, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(cells).rstrip()

    return "\n".join([line(headings), line(["-" * w for w in widths[:-1]] + [""]), *(line(row) for row in rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ab", description="Compare this tree's benchmark figures with an older commit's, in alternating rounds."
    )
    parser.add_argument("--base", required=True, metavar="REV", help="the git revision to compare this tree against")
    parser.add_argument("--only", default="cluster,store", metavar="NAMES", help="benchmarks, comma-separated (default: cluster,store)")
    parser.add_argument("--rounds", type=int, default=3, metavar="N", help="runs per side and benchmark (default: 3)")
    parser.add_argument("--quick", action="store_true", help="pass --quick to every run (a smoke test, not figures to quote)")
    parser.add_argument("--json", metavar="FILE", help="also write every sample and ratio to FILE")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    benches = [bench for bench in map(find, names) if bench is not None]
    if len(benches) != len(names) or not names:
        parser.error(f"--only takes names of benchmarks, comma-separated; got {args.only!r}")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    # The worktree is removed on SIGTERM too; and Ctrl-C works even if started with SIGINT ignored (a background
    # job of a script), and so reaches the benchmarks, which start with SIGINT at its default, as handled signals are.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.perf_counter()
    try:
        commit = _git("rev-parse", "--verify", f"{args.base}^{{commit}}")
        modules = ["benchmarks/harness.py", *(f"{bench.module.replace('.', '/')}.py" for bench in benches)]
        differs = subprocess.run(["git", "-C", str(NEW_TREE), "diff", "--quiet", commit, "--", *modules]).returncode != 0
        head = _git("rev-parse", "--short", "HEAD") + (" with uncommitted changes" if _git("status", "--porcelain", "-uno") else "")
        with _worktree(commit) as old_tree:
            _check_imports(old_tree, "old")
            _check_imports(NEW_TREE, "new")
            comparisons = _measure(old_tree, names, args.rounds, args.quick)
    except RunFailed as error:
        progress(f"ab: {error}")
        return 1
    except KeyboardInterrupt:
        progress("ab: interrupted (the worktree is removed)")
        return 130
    seconds = time.perf_counter() - started
    flagged = [c for c in comparisons if c.worse]
    print(f"== A/B: new = {NEW_TREE} at {head}; old = {args.base} ({commit[:7]})")
    print(
        f"   {args.rounds} round(s) per side{' (--quick)' if args.quick else ''}, alternating old, new; each a fresh "
        f"`python -m benchmarks --only NAME --json`; medians of the rounds; {seconds:.0f} s in all"
    )
    if differs:
        print(f"   note: the benchmark code itself ({', '.join(modules)}) differs between old and new")
    print("   new vs old > 1: the new code is better; spread: widest max/min - 1 among one side's rounds\n")
    print(_table(comparisons))
    print(f"\nmore than {1 - WORSE:.0%} worse: " + (", ".join(f"{c.benchmark} {c.key}" for c in flagged) or "none"))
    if args.json:
        document = {
            "base": args.base,
            "base_commit": commit,
            "new": f"{NEW_TREE} at {head}",
            "rounds": args.rounds,
            "quick": args.quick,
            "seconds": seconds,
            "benchmark_code_differs": differs,
            "figures": [c.to_json() for c in comparisons],
            "flagged": [f"{c.benchmark}.{c.key}" for c in flagged],
        }
        Path(args.json).write_text(json.dumps(document, indent=2, allow_nan=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
