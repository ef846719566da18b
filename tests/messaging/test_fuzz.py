"""Hostile bytes: every mutation of a valid envelope decodes or raises EnvelopeError, nothing else."""

from __future__ import annotations

import importlib.util
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.messaging import EnvelopeError, LinkPolicy, Wire, decode_envelope

from .strategies import encoded_envelopes

INTERESTING_U32 = [0, 1, 3, 4, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFC, 0xFFFF_FFFF]
WIRES = [Wire(LinkPolicy.safe_link()), Wire(LinkPolicy.trusted_link())]


def _decodes_or_rejects(data: bytes) -> None:
    try:
        envelope = decode_envelope(data)
    except EnvelopeError:
        pass
    else:
        assert len(envelope.payload) <= len(data)
        assert sum(1 for _ in envelope.buffers) * 24 <= len(data)
    for wire in WIRES:
        try:
            wire.decode_envelope(data)
        except EnvelopeError:
            pass


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(encoded_envelopes()))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "byte", "u32", "u16", "truncate", "insert", "delete", "splice"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte":
            data[at] = draw(st.integers(0, 255))
        elif op == "u32" and at + 4 <= len(data):
            value = draw(st.sampled_from([*INTERESTING_U32, len(data), len(data) - at, at]) | st.integers(0, 0xFFFF_FFFF))
            struct.pack_into("<I", data, at, value)
        elif op == "u16" and at + 2 <= len(data):
            struct.pack_into("<H", data, at, draw(st.sampled_from([0, 1, 2, 3, 4, 0xFFFE, 0xFFFF]) | st.integers(0, 0xFFFF)))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif op == "splice":
            data.extend(draw(st.binary(max_size=64)))
    return bytes(data)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_envelopes_decode_or_raise_envelope_error(data: bytes) -> None:
    _decodes_or_rejects(data)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_decode_or_raise_envelope_error(data: bytes) -> None:
    _decodes_or_rejects(data)


@settings(max_examples=500, deadline=None)
@given(encoded_envelopes(), st.binary(max_size=200))
def test_valid_prefix_with_garbage_after_it(valid: bytes, garbage: bytes) -> None:
    _decodes_or_rejects(valid[:136] + garbage)


def test_every_truncation_of_an_envelope_is_rejected_cleanly() -> None:
    from nexus.messaging import BufferRef, Envelope, encode_envelope, encode_envelope_generic

    sample = Envelope(payload=b"x" * 40, sender="nexus://a", target="nexus://b", buffers=(BufferRef(1, 2, 3),))
    for data in (encode_envelope(sample), encode_envelope_generic(sample)):
        for cut in range(len(data)):
            _decodes_or_rejects(data[:cut])


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris is not installed on this platform")
def test_atheris_finds_no_crash(tmp_path: Path) -> None:
    """Coverage-guided: 200,000 inputs mutated from seed envelopes (about 3 s)."""
    script = Path(__file__).parent.parent / "fuzz" / "fuzz_envelope.py"
    corpus = tmp_path / "corpus"
    proc = subprocess.run(
        [sys.executable, str(script), str(corpus), "-runs=200000", "-max_len=2048", "-seed=1", f"-artifact_prefix={tmp_path}/"],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done 200000 runs" in proc.stderr
