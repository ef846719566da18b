"""The `nexus` console script."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nexus
from nexus.manage.cli import main


def _nexus() -> list[str]:
    script = Path(sys.executable).with_name("nexus")
    if script.exists():
        return [str(script)]
    found = shutil.which("nexus")
    return [found] if found else [sys.executable, "-m", "nexus.manage.cli"]


def test_demo_shows_a_supervised_failure_and_restart() -> None:
    result = subprocess.run([*_nexus(), "demo"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "counter after 1000 tells: 1000" in out
    assert "raised ValueError" in out and "-> RESTART" in out
    assert "restarted: /user/supervisor/worker (restart #1)" in out
    assert "-> STOP" in out and "has terminated" in out
    assert "all actors stopped" in out


def test_demo_runs_a_local_cluster() -> None:
    result = subprocess.run([*_nexus(), "demo"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "local cluster: 2 worker processes over 'shm'" in out
    assert "40 tasks ran in worker processes (pid " in out
    assert "deposits -> [10, 20, 30, 40, 50], after a tell of 50 -> 100" in out
    assert "ZeroDivisionError(division by zero)" in out
    assert "went to a worker through shared memory" in out
    assert "call rates: tasks" in out
    assert "cluster shut down: no shared-memory segments left behind" in out


def test_version_and_help(capsys: object) -> None:
    result = subprocess.run([*_nexus(), "--version"], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == f"nexus {nexus.__version__}"
    assert main([]) == 2
