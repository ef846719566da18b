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


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_nexus(), *args], capture_output=True, text=True, timeout=60)


def test_config_init_writes_each_editions_template_and_config_validate_accepts_it(tmp_path: Path) -> None:
    for edition in ("core", "std", "enterprise"):
        path = tmp_path / f"{edition}.toml"
        made = _run("config", "init", "--edition", edition, "-o", str(path))
        assert made.returncode == 0 and f"nexus config validate {path}" in made.stdout, made.stderr
        checked = _run("config", "validate", str(path))
        assert checked.returncode == 0 and "valid" in checked.stdout, checked.stderr
    again = _run("config", "init", "-o", str(tmp_path / "core.toml"))
    assert again.returncode == 1 and "--force" in again.stderr, "an existing file is not written over unasked"
    shown = _run("config", "init", "--edition", "std")
    assert shown.returncode == 0 and "[head]" in shown.stdout
    bad = _run("config", "init", "--edition", "pro")
    assert bad.returncode == 2 and "'pro' is not one of 'core', 'std', 'enterprise'" in bad.stderr


def test_config_validate_lists_every_problem_and_fails(tmp_path: Path) -> None:
    path = tmp_path / "nexus.toml"
    path.write_text('[head]\nport = "6380"\nbnid = "x"\n')
    result = _run("config", "validate", str(path))
    assert result.returncode == 1 and "2 problem(s)" in result.stderr and "Traceback" not in result.stderr
    assert "head.port: expected an integer (the head's port), got '6380' (a string)" in result.stderr
    assert "did you mean 'bind'?" in result.stderr
    missing = _run("config", "validate", str(tmp_path / "none.toml"))
    assert missing.returncode == 1 and "No such file" in missing.stderr


def test_unknown_commands_and_options_are_usage_errors() -> None:
    assert main(["nosuch"]) == 2
    assert main(["status", "--nosuch"]) == 2
    assert main(["drain", "xyz"]) == 2
    result = _run("drain", "xyz")
    assert result.returncode == 2 and "hex, such as 000001" in result.stderr


def _complete(words: str, shell: str = "bash") -> list[str]:
    import os

    env = {**os.environ, "_NEXUS_COMPLETE": f"{shell}_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
    done = subprocess.run(_nexus(), capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    return [line.split(",", 1)[1] for line in done.stdout.splitlines() if "," in line]


def test_shell_completion_offers_commands_their_arguments_and_options() -> None:
    assert {"status", "list", "logs", "drain", "dump", "config"} <= set(_complete("nexus "))
    assert _complete("nexus dr") == ["drain"]
    assert set(_complete("nexus list ")) == {"nodes", "workers", "actors", "tasks", "objects", "devices"}
    assert "--filter" in _complete("nexus list actors --f") and "--fields" in _complete("nexus list actors --f")
    assert _complete("nexus config init --edition ") == ["core", "std", "enterprise"]
    import os

    script = subprocess.run(_nexus(), capture_output=True, text=True, timeout=60, env={**os.environ, "_NEXUS_COMPLETE": "bash_source"})
    assert "complete -o nosort -F _nexus_completion nexus" in script.stdout, script.stdout[-300:]
