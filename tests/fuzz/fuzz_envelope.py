"""Coverage-guided fuzzing of the envelope decoder and of Wire.decode with atheris.

    python tests/fuzz/fuzz_envelope.py [corpus_dir] -runs=100000

Every input must either decode or raise EnvelopeError; anything else is a
crash that atheris reports with the input that caused it. The corpus is
seeded with valid envelopes so mutations start from real structure.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["nexus.messaging"]):
    from nexus.messaging import EnvelopeError, LinkPolicy, Wire, decode_envelope

WIRE = Wire(LinkPolicy.safe_link(max_envelope_size=1 << 16))


def test_one_input(data: bytes) -> None:
    try:
        envelope = decode_envelope(data, max_size=1 << 16)
    except EnvelopeError:
        return
    assert len(envelope.payload) <= len(data)
    try:
        WIRE.decode(data)
    except EnvelopeError:
        pass


def write_seeds(folder: str) -> None:
    from pathlib import Path

    from nexus.messaging import BufferRef, Envelope, encode_envelope, encode_envelope_generic

    samples = [
        Envelope(),
        Envelope(kind=2, payload=b"\xa1aa\x01", codec=5, correlation_id=7, sender="nexus://a/user/b", target="nexus://c/user/d"),
        Envelope(payload=b'{"x":1}', codec=6, trace_id=1 << 100, span_id=3, buffers=(BufferRef(0, 0, 4),)),
    ]
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for i, sample in enumerate(samples):
        (path / f"fast{i}").write_bytes(encode_envelope(sample))
        (path / f"generic{i}").write_bytes(encode_envelope_generic(sample))


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        write_seeds(sys.argv[1])
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
