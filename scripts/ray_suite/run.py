#!/usr/bin/env python
"""Run Ray's own core test files with ``import ray`` resolving to Nexus, and count what passes.

    .venv/bin/python scripts/ray_suite/run.py [RAY_TESTS_DIR] [--files test_basic.py ...] [--timeout 60]
                                              [--strict] [--out DIR] [--list]

RAY_TESTS_DIR (default /tmp/raysuite/tests) holds copies of files of Ray's ``python/ray/tests/`` (see README.md);
they are run unchanged. Each file runs in its own pytest process (one at a time), with, first on PYTHONPATH:

* ``shim/``    the ``ray`` package: Nexus's public API under Ray's names (``ray/_private`` absent on purpose);
* ``harness/`` stand-ins for Ray's internals and Ray's test helpers (``wait_for_condition``, ``SignalActor``...),
               installed in every process by its ``sitecustomize`` (``--strict``: not installed; then a file that
               imports an internal at its top fails to collect);
* this folder  (``conftest.py``: Ray's fixtures, async tests, the per-test record), loaded with ``-p conftest``;
* RAY_TESTS_DIR (Ray's workers import the test module to run a function defined at its top level; Nexus's
               workers need it on their path too).

pytest-timeout gives each test ``--timeout`` seconds (60).

Each test is then one of:

passed / failed     in scope: it used only Ray's public API; a failure (also an error in a fixture, a timeout)
                    is a Nexus gap (missing API or different behaviour) and is grouped by its first cause;
skipped             pytest skipped it (Ray's own skip/skipif/xfail marks);
out of scope        it needs Ray's internals, by the rules below (documented list);
deselected          the harness does not run it (:data:`HARNESS_DESELECT`, with the reason); the tests of
                    :data:`OUT_OF_SCOPE_NOT_RUN` are not run either, and count as out of scope.

Out of scope, in this order (see :func:`out_of_scope_reason`):

1. it asks for one of :data:`scope.OUT_OF_SCOPE_FIXTURES` (``ray_start_cluster*``, ``error_pubsub``,
   ``call_ray_start``, dashboards, Redis, Ray Client...);
2. it is named in :data:`OUT_OF_SCOPE_TESTS` (tests whose subject is an internal, e.g. dashboards, or that mock
   Ray's core worker);
3. during the test it touched one of Ray's internals (``ray._private``, ``ray._raylet``, ``ray._common``,
   ``ray.worker``, ``ray.state``, ``ray.experimental``, ``ray.cluster_utils``, ``ray.util.state``,
   ``ray.runtime_env``, ``ray.util.client``, a non-helper name of ``ray._private.test_utils``, Ray-internal classes
   of ``ray.actor``): the harness's import hook records each import and use (whatever the test's outcome);
4. its error says so (:data:`INTERNALS_ERROR`: an ``OutOfScopeError`` raised in a worker, ``AttributeError`` /
   ``ImportError`` on an internal module, ``init()`` refusing ``runtime_env`` / ``include_dashboard``).

The pass rate is passed / (passed + failed).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from scope import OUT_OF_SCOPE_FIXTURES  # noqa: E402

DEFAULT_TESTS = Path("/tmp/raysuite/tests")

# The files, in the order they run (those absent from RAY_TESTS_DIR are left out).
FILES = [
    "test_basic.py",
    "test_basic_2.py",
    "test_actor.py",
    "test_actor_pool.py",
    "test_queue.py",
    "test_generators.py",
    "test_streaming_generator.py",
    "test_cancel.py",
    "test_failure.py",
    "test_actor_failures.py",
    "test_async.py",
    "test_asyncio.py",
    "test_get_or_create_actor.py",
    "test_concurrency_group.py",
    "test_actor_lifetime.py",
    "test_runtime_context.py",
]

# Tests the harness does not run: "file::function" -> why.
HARNESS_DESELECT = {
    "test_generators.py::test_generator_oom": "allocates 100 x 100 MB (10 GB) in one task to provoke an OOM "
    "on purpose: not on a shared 24 GB machine",
}

# Tests not run because running them harms the rest of the file's process, and out of scope anyway:
# "file::function" -> why (counted as out of scope).
OUT_OF_SCOPE_NOT_RUN = {
    "test_basic.py::test_default_worker_import_dependency": "imports ray._private.workers.default_worker after "
    "removing ray and numpy from sys.modules (numpy cannot be imported twice in one process)",
}

# Tests out of scope by name (function name, or a regex on it) -> why.
OUT_OF_SCOPE_TESTS = {
    r"dashboard": "Ray dashboard",
    r"^test_streaming_object_ref_generator_(basic|task_failed)_unit$": "unit test of Ray's ObjectRefGenerator "
    "against a mocked core worker (ray._raylet)",
    r"^test_default_worker_import_dependency$": "imports Ray's worker process entry (ray._private.workers)",
    r"^test_function_descriptor$": "ray._raylet function descriptors",
    r"^test_actor_class_name$": "reads Ray's GCS (redis) tables",
    r"^test_actor_method_metadata_cache$": "ray.actor.ActorClassMethodMetadata cache (internal)",
    r"^test_options$": "ray._private.ray_option_utils",
    r"^test_get_correct_node_ip$": "patches ray._private.worker",
    r"^test_use_dynamic_function_and_class$": "runtime_env py_modules and GCS function table",
    r"^test_load_code_from_local$": "runtime_env py_modules",
    r"^test_asyncio_exit_actor$": "checks ray.state.actors() (the GCS actor table) inside a task",
    r"^test_generator_streaming_no_leak_upon_failures$": "checks for leaks with ray.experimental.state "
    "list_objects inside a task (a worker's use of an internal is not seen by the hook)",
}

# An error that means "needs Ray's internals" (matched on the error lines, not on the test's source).
INTERNALS_ERROR = re.compile(
    r"Ray internals needed|OutOfScopeError|\(a Ray internal\)|not in this suite's scope"
    r"|No module named '?ray\.(_private|_raylet|_common|worker|state|experimental|cluster_utils|ray_constants"
    r"|test_utils|tests|runtime_env|dashboard|util\.state|util\.client)"
    r"|unexpected keyword argument\(s\):.*\b(runtime_env|include_dashboard|dashboard_port|_lru_evict)\b"
    r"|\bruntime_env\b.*(not supported|refused|unexpected)"
)

TIMEOUT_MARK = re.compile(r"Timeout \(?>[\d.]+s\)?|Failed: Timeout")


def _error_lines(phase: dict[str, Any]) -> str:
    text = phase.get("text", "")
    lines = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("E ")]
    return "\n".join([phase.get("message", ""), *lines])


def out_of_scope_reason(rec: dict[str, Any], failing: dict[str, Any] | None) -> str | None:
    for fixture in rec.get("fixtures", []):
        if fixture in OUT_OF_SCOPE_FIXTURES:
            return f"fixture {fixture}: {OUT_OF_SCOPE_FIXTURES[fixture]}"
    for pattern, why in OUT_OF_SCOPE_TESTS.items():
        if re.search(pattern, rec.get("function", "")):
            return f"by name: {why}"
    touched = [t for t in rec.get("touched", []) if not t.startswith("fixture ")]
    if touched:
        return f"touched {touched[0]}"
    if failing is not None:
        match = INTERNALS_ERROR.search(_error_lines(failing))
        if match:
            return f"error: {match.group(0)}"
    return None


def classify(rec: dict[str, Any]) -> tuple[str, str]:
    """(status, detail): status is passed, failed, skipped or out_of_scope."""
    phases = rec.get("phases", {})
    order = [phases.get(w, {}) for w in ("setup", "call", "teardown")]
    failing = next((p for p in order if p.get("outcome") == "failed"), None)
    skipped = next((p for p in order if p.get("outcome") == "skipped"), None)
    if skipped is not None and failing is None:
        return "skipped", skipped.get("message", "")
    reason = out_of_scope_reason(rec, failing)
    if reason:
        return "out_of_scope", reason
    if failing is None:
        if rec.get("crashed"):
            return "failed", rec["crashed"]
        return "passed", ""
    message = (failing.get("message") or "").strip()
    first = message.splitlines()[0] if message else "(no message)"
    if TIMEOUT_MARK.search(failing.get("text", "") + message):
        return "failed", f"TIMEOUT ({first[:160]})"
    return "failed", first[:300]


def _cause_key(detail: str) -> str:
    key = re.sub(r"0x[0-9a-fA-F]+", "0x…", detail)
    key = re.sub(r"\b[0-9a-f]{12,}\b", "…", key)
    key = re.sub(r"\d+(\.\d+)?", "N", key)
    return key[:110]


def _pythonpath(tests_dir: Path, strict: bool) -> str:
    parts = [HERE / "shim"]
    if not strict:
        parts.append(HERE / "harness")
    parts += [HERE, tests_dir]
    old = os.environ.get("PYTHONPATH")
    return os.pathsep.join([str(p) for p in parts] + ([old] if old else []))


def run_file(path: Path, args: argparse.Namespace, out_dir: Path) -> list[dict[str, Any]]:
    """Run one file (again, without what is done, if its pytest process died); its records."""
    results = out_dir / f"{path.stem}.jsonl"
    log = out_dir / f"{path.stem}.log"
    results.unlink(missing_ok=True)
    log.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=_pythonpath(path.parent, args.strict), RAY_SUITE_RESULTS=str(results))
    if args.strict:
        env["RAY_SUITE_STRICT"] = "1"
    env.pop("PYTEST_ADDOPTS", None)
    done: set[str] = set()
    crashed: list[dict[str, Any]] = []
    for attempt in range(50):
        deselect = [n for n in (*HARNESS_DESELECT, *OUT_OF_SCOPE_NOT_RUN) if n.startswith(path.name + "::")]
        deselect += sorted(done)
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            str(path),
            "-p",
            "conftest",
            "-p",
            "no:cacheprovider",
            "-c",
            os.devnull,
            "--rootdir",
            str(path.parent),
            f"--timeout={args.timeout}",
            "--timeout-method=signal",
            "-q",
            "-rN",
            "--color=no",
            "-o",
            "console_output_style=classic",
        ]
        for nodeid in deselect:
            cmd += ["--deselect", nodeid]
        started = time.monotonic()
        with open(log, "a", encoding="utf-8") as log_file:
            log_file.write(f"\n=== attempt {attempt}: {' '.join(cmd)}\n")
            log_file.flush()
            proc = subprocess.Popen(cmd, cwd=str(out_dir), env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                proc.wait(timeout=args.file_cap)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                log_file.write(f"\n=== killed after {args.file_cap}s\n")
        records = _read(results)
        collected: list[str] = []
        for rec in records:
            if rec["kind"] == "collected" and rec.get("nodeids"):
                collected = rec["nodeids"]
        finished = {r["nodeid"] for r in records if r["kind"] == "test"} | {c["nodeid"] for c in crashed}
        missing = [n for n in collected if n not in finished and n not in deselect]
        if not missing:
            break
        # The process died (or was killed) during missing[0]: count it, then run the rest.
        crashed.append(
            {
                "kind": "test",
                "nodeid": missing[0],
                "name": missing[0].split("::")[-1],
                "function": missing[0].split("::")[-1].split("[")[0],
                "fixtures": [],
                "phases": {},
                "touched": [],
                "props": [],
                "crashed": f"pytest process died or hung during this test (exit {proc.returncode}, {time.monotonic() - started:.0f}s)",
            }
        )
        done = set(finished) | {missing[0]}
    records = _read(results) + crashed
    return records


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tests_dir", nargs="?", default=str(DEFAULT_TESTS))
    parser.add_argument("--files", nargs="*", help="only these files (names in the folder)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per test (pytest-timeout)")
    parser.add_argument("--file-cap", type=float, default=2400.0, help="seconds before a file's pytest is killed")
    parser.add_argument("--strict", action="store_true", help="no stand-ins for Ray's internals nor Ray's helpers")
    parser.add_argument("--out", default="/tmp/raysuite/results", help="folder for logs and records")
    parser.add_argument("--list", action="store_true", help="list every test with its status")
    parser.add_argument("--report-only", action="store_true", help="classify the records in --out again")
    args = parser.parse_args()

    tests_dir = Path(args.tests_dir).resolve()
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    names = args.files or [f for f in FILES if (tests_dir / f).exists()]
    try:
        import pytest_timeout  # noqa: F401
    except ImportError:
        print("pytest-timeout is not installed: .venv/bin/pip install pytest-timeout", file=sys.stderr)
        return 2

    per_file: dict[str, collections.Counter[str]] = {}
    failures: list[tuple[str, str]] = []
    oos_reasons: collections.Counter[str] = collections.Counter()
    collect_errors: list[tuple[str, str]] = []
    timeouts: list[str] = []
    listing: list[tuple[str, str, str]] = []
    summary: dict[str, Any] = {"files": {}, "tests": []}
    for name in names:
        path = tests_dir / name
        if not path.exists():
            print(f"(no {name} in {tests_dir})")
            continue
        t0 = time.monotonic()
        records = _read(out_dir / f"{path.stem}.jsonl") if args.report_only else run_file(path, args, out_dir)
        counts: collections.Counter[str] = collections.Counter()
        for rec in records:
            if rec["kind"] == "collect_error":
                collect_errors.append((name, rec["message"]))
                counts["collect_error"] += 1
            if rec["kind"] != "test":
                continue
            status, detail = classify(rec)
            counts[status] += 1
            listing.append((rec["nodeid"], status, detail))
            summary["tests"].append({"nodeid": rec["nodeid"], "status": status, "detail": detail, "seconds": rec.get("seconds")})
            if status == "failed":
                failures.append((rec["nodeid"], detail))
                if detail.startswith("TIMEOUT") or "hung" in detail:
                    timeouts.append(rec["nodeid"])
            elif status == "out_of_scope":
                oos_reasons[re.sub(r"\(set\)|\(\)|\.\w+$", "", detail)[:70]] += 1
        counts["deselected"] = sum(1 for k in HARNESS_DESELECT if k.startswith(name + "::"))
        for nodeid, why in OUT_OF_SCOPE_NOT_RUN.items():
            if nodeid.startswith(name + "::"):
                counts["out_of_scope"] += 1
                oos_reasons[f"not run: {why}"[:70]] += 1
                listing.append((nodeid, "out_of_scope", f"not run: {why}"))
        per_file[name] = counts
        summary["files"][name] = dict(counts)
        if not args.report_only:
            print(f"  ran {name} in {time.monotonic() - t0:.0f}s: {dict(counts)}", flush=True)

    cols = ["passed", "failed", "skipped", "out_of_scope", "deselected", "collect_error"]
    print()
    print(f"{'file':32s}" + "".join(f"{c:>14s}" for c in cols))
    total: collections.Counter[str] = collections.Counter()
    for name, counts in per_file.items():
        total.update(counts)
        print(f"{name:32s}" + "".join(f"{counts.get(c, 0):14d}" for c in cols))
    print(f"{'TOTAL':32s}" + "".join(f"{total.get(c, 0):14d}" for c in cols))
    in_scope = total["passed"] + total["failed"]
    rate = 100.0 * total["passed"] / in_scope if in_scope else 0.0
    print(f"\nin scope: {in_scope} tests, passed {total['passed']}, failed {total['failed']}: pass rate {rate:.1f}%")
    summary["total"] = dict(total)
    summary["pass_rate"] = rate

    if collect_errors:
        print("\nfiles that did not collect (their tests are not counted):")
        for name, message in collect_errors:
            print(f"  {name}: {message[:200]}")

    groups: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    for nodeid, detail in failures:
        groups[_cause_key(detail)].append((nodeid, detail))
    print("\nin-scope failures by first error (largest first):")
    for _key, items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        print(f"  [{len(items)}] {items[0][1][:200]}")
        for nodeid, _ in items:
            print(f"        {nodeid}")
    if timeouts:
        print("\ntimed out or hung:")
        for nodeid in timeouts:
            print(f"  {nodeid}")
    print("\nout of scope, by reason:")
    for reason, n in oos_reasons.most_common():
        print(f"  [{n}] {reason}")
    if args.list:
        print("\nevery test:")
        for nodeid, status, detail in listing:
            print(f"  {status:13s} {nodeid}  {detail[:150]}")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(f"\n(records and pytest logs in {out_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
