"""A worker process starts on what it needs: no in-process runtime, no state API, no asyncio, no package scan.

Every worker imports ``nexus``; each module here costs every ``init`` about
5-15 ms per worker process. The names stay available: they are imported on
first use.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("asyncio", "importlib.metadata", "nexus.core.system", "nexus.core.cell", "nexus.state", "nexus.notebook")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_a_worker_imports_no_heavy_module():
    loaded = _modules_after("import nexus.cluster.worker")
    assert not loaded & set(HEAVY), f"imported at worker start: {sorted(loaded & set(HEAVY))}"


def test_lazy_names_still_resolve():
    loaded = _modules_after(
        "import nexus\n"
        "assert nexus.ActorSystem.__module__ == 'nexus.core.system'\n"
        "assert nexus.state.list_workers\n"
        "from nexus.core import *\n"
        "assert MpmcQueue and OneForOneStrategy\n"
        "import nexus.core as core\n"
        "assert set(core.__all__) <= set(dir(core))"
    )
    assert {"nexus.core.system", "nexus.state"} <= loaded
