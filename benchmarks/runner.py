"""``python -m benchmarks``: run the registered benchmark modules and print what they measured.

Tables go to stdout (one per benchmark); with ``--json`` stdout holds exactly
one JSON object instead. Progress and errors go to stderr. The exit status is
0 even when targets are missed -- benchmarks report, they do not gate -- and 1
only when a benchmark could not run or produced an invalid figure.

``python -m benchmarks.ab --base REV`` compares this tree's figures with those of commit REV, in alternating
rounds of fresh runs of this command (see :mod:`benchmarks.ab`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from .harness import progress
from .limits import fractions
from .outputs import write_outputs
from .registry import benchmarks, find
from .report import error_table, json_document, render_table

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    names = ", ".join(bench.name for bench in benchmarks())
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=f"Measure Nexus, side by side with peer libraries where there is one. Benchmarks: {names}.",
    )
    parser.add_argument("--only", metavar="NAME", help="run only the benchmark module NAME")
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test for CI), not figures to quote")
    parser.add_argument("--json", action="store_true", help="print one JSON object of all figures instead of tables")
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=str(Path(__file__).resolve().parent / "results"),
        help="write results.json, results.md and chart.png here (default: benchmarks/results)",
    )
    return parser


def _compile_sources() -> None:
    """Byte-compile Nexus's own sources, as installing a wheel does (pip compiles on install, and Ray's
    modules arrive compiled). An editable install under ``PYTHONDONTWRITEBYTECODE`` would otherwise
    compile every module from source in every worker process, and start-up figures would measure that."""
    import compileall

    import nexus
    import transports

    for package in (nexus, transports):
        for folder in package.__path__:
            compileall.compile_dir(folder, quiet=2)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _compile_sources()
    if args.only is not None:
        bench = find(args.only)
        if bench is None:
            parser.error(f"no benchmark named {args.only!r}; choose from: {', '.join(b.name for b in benchmarks())}")
        selected = [bench]
    else:
        selected = benchmarks()

    results: dict[str, Any] = {}
    objects: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for bench in selected:
        started = time.perf_counter()
        progress(f"{bench.name}: running{' (quick)' if args.quick else ''}")
        try:
            result = bench.run(args.quick)
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            errors[bench.name] = f"{type(error).__name__}: {error}"
            if not args.json:
                print(error_table(bench.name, error), end="\n\n", flush=True)
            continue
        progress(f"{bench.name}: done in {time.perf_counter() - started:.1f} s")
        results[bench.name] = result.to_json()
        objects[bench.name] = result
        if not args.json:
            print(render_table(result), end="\n\n", flush=True)

    notes = fractions(objects)
    document = json_document(results, args.quick, errors)
    if args.json:
        print(json.dumps(document, indent=2, allow_nan=False), flush=True)
    elif notes:
        print("== against the limits of this machine\n" + "\n".join(f"   {n}" for n in notes), flush=True)
    if args.out:
        written = write_outputs(Path(args.out), document, objects, notes, args.quick)
        progress("wrote " + ", ".join(str(p) for p in written))
    return 1 if errors else 0
