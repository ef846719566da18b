"""Smoke test of the benchmark harness: ``python -m benchmarks --quick --json --only core`` runs end to end.

No thresholds: figures depend on the machine, and benchmarks report rather
than gate. This checks only that the runner prints exactly one JSON object
with every expected figure as a positive number, and that it still works
when Pykka cannot be imported. Each run takes a few seconds.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ("tell_throughput", "ask_roundtrip", "ping_pong")
ARGS = ["--quick", "--json", "--only", "core"]


def _run(command: list[str], name: str = "core") -> dict[str, Any]:
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, f"exit status {proc.returncode}\nstderr:\n{proc.stderr}"
    document = json.loads(proc.stdout)  # fails unless stdout is exactly one JSON value
    assert isinstance(document, dict)
    assert document["quick"] is True
    assert document["errors"] == {}
    assert list(document["benchmarks"]) == [name]
    return document["benchmarks"][name]


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _check_figures(core: dict[str, Any], with_pykka: bool) -> None:
    figures = core["figures"]
    assert set(FIGURES) <= set(figures), f"missing figures: {set(FIGURES) - set(figures)}"
    for key in FIGURES:
        figure = figures[key]
        assert _positive(figure["nexus"]), (key, figure["nexus"])
        assert figure["samples"]["nexus"] and all(_positive(v) for v in figure["samples"]["nexus"]), key
        assert figure["target"] is not None and figure["target_text"], key
        if with_pykka:
            assert _positive(figure["pykka"]), (key, figure["pykka"])
            assert _positive(figure["ratio"]), (key, figure["ratio"])
            assert isinstance(figure["met"], bool), key
        else:
            assert figure["pykka"] is None and figure["ratio"] is None, key


def test_core_quick_json() -> None:
    core = _run([sys.executable, "-m", "benchmarks", *ARGS])
    with_pykka = importlib.util.find_spec("pykka") is not None
    assert core["peer_available"] is with_pykka
    _check_figures(core, with_pykka)


def test_core_quick_json_without_pykka() -> None:
    hide_pykka = (
        "import sys; sys.modules['pykka'] = None; "
        f"from benchmarks.runner import main; raise SystemExit(main({ARGS!r}))"
    )
    core = _run([sys.executable, "-c", hide_pykka])
    assert core["peer_available"] is False
    _check_figures(core, with_pykka=False)


def test_envelope_quick_json() -> None:
    envelope = _run([sys.executable, "-m", "benchmarks", "--quick", "--json", "--only", "envelope"], name="envelope")
    figures = envelope["figures"]
    for key in ("roundtrip", "encode", "decode", "wire_call"):
        assert _positive(figures[key]["nexus"]) and _positive(figures[key]["generic"]) and _positive(figures[key]["ratio"]), key
    assert figures["roundtrip"]["target_text"] == ">= 10x generic Builder"
    assert any("shares the original memory: True" in note for note in envelope["notes"])


def test_cluster_quick_json_without_ray() -> None:
    hide_ray = (
        "import sys; sys.modules['ray'] = None; "
        "from benchmarks.runner import main; raise SystemExit(main(['--quick', '--json', '--only', 'cluster']))"
    )
    cluster = _run([sys.executable, "-c", hide_ray], name="cluster")
    assert cluster["peer_available"] is False
    for key in ("init", "tasks_sync", "tasks_async", "actor_sync", "actor_async", "get_small", "put_small"):
        figure = cluster["figures"][key]
        assert _positive(figure["nexus"]) and figure["ray"] is None, key


def test_store_quick_json_without_ray() -> None:
    hide_ray = (
        "import sys; sys.modules['ray'] = None; "
        "from benchmarks.runner import main; raise SystemExit(main(['--quick', '--json', '--only', 'store']))"
    )
    store = _run([sys.executable, "-c", hide_ray], name="store")
    assert store["peer_available"] is False
    for key in ("put_large", "get_large", "put_small", "get_small"):
        figure = store["figures"][key]
        assert _positive(figure["nexus"]) and figure["ray"] is None, key
    assert any("memory overhead per object" in note for note in store["notes"])


def test_limits_and_microbench_quick_json_without_ray(tmp_path) -> None:
    hide_ray = (
        "import sys; sys.modules['ray'] = None; from benchmarks.runner import main; "
        f"raise SystemExit(main(['--quick', '--json', '--only', '{{name}}', '--out', {str(tmp_path)!r}]))"
    )
    limits = _run([sys.executable, "-c", hide_ray.format(name="limits")], name="limits")
    for key in ("pingpong_spin", "pingpong_eventfd", "copy_shm", "copy_fresh"):
        assert _positive(limits["figures"][key]["nexus"]), key
    micro = _run([sys.executable, "-c", hide_ray.format(name="microbench")], name="microbench")
    for key in ("multi_client_tasks", "actor_1_n", "actor_n_n", "async_actor_sync", "concurrent_actor", "wait_1k", "get_10k_refs"):
        assert _positive(micro["figures"][key]["nexus"]) and micro["figures"][key]["ray"] is None, key
    assert (tmp_path / "results.json").exists() and "| figure |" in (tmp_path / "results.md").read_text()
