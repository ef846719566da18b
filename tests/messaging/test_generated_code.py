"""The committed generated code matches the schema, and the schema ships in the package."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_generated_code_matches_the_schema() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "regen_flatbuffers.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_is_shipped_with_the_package() -> None:
    schema = resources.files("nexus.messaging").joinpath("envelope.fbs").read_text()
    assert 'file_identifier "NXE1";' in schema and "root_type Envelope;" in schema
