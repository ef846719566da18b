"""nexus.core is the Python form of the seed's no_std core: standard library only."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "nexus" / "core"


def test_every_import_in_core_is_stdlib_or_core() -> None:
    offenders = []
    for path in sorted(CORE.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level > 0:  # relative: inside nexus.core (".." would leave it)
                    if node.level > 1:
                        offenders.append(f"{path.name}:{node.lineno} relative import out of nexus.core")
                    continue
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "__future__":
                    offenders.append(f"{path.name}:{node.lineno} imports {name}")
    assert offenders == []


BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys

    BLOCKED = {"zmq", "flatbuffers", "cloudpickle", "numpy"}

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked for this test")
            return None

    sys.meta_path.insert(0, Block())
    for name in list(sys.modules):
        if name.split(".")[0] in BLOCKED:
            del sys.modules[name]
    """
)

PROGRAM = textwrap.dedent(
    """
    import zmq_check
    try:
        import zmq  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the blocker does not work")

    from nexus.core import ActorSystem, Actor, OneForOneStrategy, Props

    class Counter(Actor):
        def __init__(self):
            self.n = 0
        def receive(self, ctx, message):
            if message == "boom":
                raise RuntimeError("boom")
            if message == "get":
                ctx.respond(self.n)
            else:
                self.n += message

    with ActorSystem("stdlib") as system:
        ref = system.spawn(Counter)
        for _ in range(100):
            ref.tell(1)
        assert ref.ask("get", timeout=5).result(5) == 100
        ref.tell("boom")
        assert ref.ask("get", timeout=5).result(5) == 0
    import sys
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in {"zmq", "flatbuffers", "cloudpickle", "numpy"})
    assert not leaked, leaked
    print("core ran without third-party packages")
    """
)


def test_core_imports_and_runs_with_third_party_packages_unimportable(tmp_path: Path) -> None:
    (tmp_path / "zmq_check.py").write_text(BLOCKER)
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        cwd=tmp_path,
        env={"PYTHONPATH": f"{tmp_path}:{CORE.parents[1]}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "core ran without third-party packages" in result.stdout


def test_importing_nexus_starts_nothing() -> None:
    program = textwrap.dedent(
        """
        import threading, sys
        before = threading.active_count()
        import nexus, nexus.core, nexus.testing
        assert threading.active_count() == before, threading.enumerate()
        assert "asyncio" not in sys.modules, "importing nexus should not pull in asyncio"
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
