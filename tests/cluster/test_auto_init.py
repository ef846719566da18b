"""Auto-init, as Ray's: the first ``.remote()``, ``get``, ``put`` or ``wait`` in a process without a cluster
starts a local one (each case in a fresh process); ``NEXUS_AUTO_INIT=0`` turns that off."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_PROGRAMS = {
    "remote": "@nexus.remote\ndef f(x):\n    return x + 1\nprint(nexus.get(f.remote(1)))",
    "actor": "@nexus.remote\nclass A:\n    def v(self):\n        return 2\nprint(nexus.get(A.remote().v.remote()))",
    "put": "print(nexus.get(nexus.put(2)))",
    "wait": "print(len(nexus.wait([], num_returns=0, timeout=0)[0]) + 2)",
    "get": "print(len(nexus.get([])) + 2)",
}


def _run(program: str, **env: str) -> subprocess.CompletedProcess[str]:
    code = f"import nexus\n{program}\nprint(nexus.is_initialized())\nnexus.shutdown()\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, **env})


@pytest.mark.parametrize("first", sorted(_PROGRAMS))
def test_the_first_call_that_needs_a_cluster_starts_a_local_one(first: str) -> None:
    done = _run(_PROGRAMS[first])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "True"], done.stdout


def test_no_cluster_is_started_with_nexus_auto_init_0() -> None:
    done = _run(_PROGRAMS["put"], NEXUS_AUTO_INIT="0")
    assert done.returncode == 1 and "call nexus.init() first (NEXUS_AUTO_INIT=0" in done.stderr, done.stderr
