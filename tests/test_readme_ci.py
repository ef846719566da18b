"""The README's two set-up commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(?:sh|bash)\n(.+?)\n```", section, re.S)


def test_readme_has_exactly_two_setup_commands_and_ci_runs_them() -> None:
    commands = _readme_commands()
    assert len(commands) == 2, commands
    install, tests = commands
    assert "pip install" in install and "nexus demo" in install
    assert "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    for command in commands:
        assert command in ci, f"CI does not run the README command: {command}"


def _examples() -> list[str]:
    return re.findall(r"```python\n(.+?)\n```", (ROOT / "README.md").read_text(), re.S)


def test_the_readme_cluster_example_runs_as_a_script() -> None:
    """As a user runs it: a fresh interpreter, functions and classes defined in __main__."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _examples()[0]], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["[0, 1, 4, 9]", "6"]


def test_the_readme_runtime_example_runs(capsys: object) -> None:
    namespace: dict[str, object] = {}
    example = next(e for e in _examples() if "ActorSystem(" in e)  # (the in-process runtime's example)
    exec(compile(example, "README.md", "exec"), namespace)
    assert capsys.readouterr().out.strip() == "5"  # type: ignore[attr-defined]
