"""Benchmark "envelope": the fast envelope path side by side with the generic FlatBuffers builder.

Method
------
The peer is the generic path of the same format: ``flatbuffers.Builder`` with
the code ``flatc`` generated from ``envelope.fbs`` to write, the generated
accessors to read (``nexus.messaging.encode_envelope_generic`` /
``decode_envelope_generic``). Nexus is the fast path
(``encode_envelope`` / ``decode_envelope``: a precomputed layout written with
``struct``, read with a bounds check before every access).

The envelope: kind ASK, codec pickle, a correlation id, sender
``nexus://driver/user/caller`` and target ``nexus://worker-1/user/counter``,
a trace context, a timestamp and a 64-byte payload -- the shape of a small
actor call. Before timing, the envelope written by each path is read back by
both readers and compared with the original (a wrong result fails the
benchmark). "decode only" times the fast reader on the fast layout; the
generic layout goes through its general (vtable-driven) path, measured by the
tests rather than here.

encode + decode (target: >= 10x the generic path, and <= 3 us, i.e. >= 333,333 /s)
    one encode and one decode per iteration;
encode only, decode only
    the two halves;
small call through Wire
    ``Wire.encode`` + ``Wire.decode`` of ``("incr", (1,), {})`` on a trusted
    link (pickle protocol 5 + envelope + policy checks) against the same with
    the generic builder and ``pickle`` -- what one message costs end to end.

Each measure times a loop of ``N`` iterations (``--quick``: ``N / 10``) after
an untimed warm-up; rounds alternate which side goes first; headline: median
of 5 rounds (``--quick``: 3).

Out-of-band data (a note, not a rate): a 100 MiB float64 array goes through
``Wire.encode`` / ``Wire.decode`` with its buffer as a frame. Reported: the
in-band envelope size, the bytes allocated while encoding and decoding
(``tracemalloc`` peak, which counts numpy's allocations), and whether the
decoded array shares the original's memory. Zero-copy means the allocation is
a few hundred bytes, not 100 MiB.
"""

from __future__ import annotations

import pickle
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from .harness import BenchmarkError, BenchmarkResult, Figure, Target, alternate_rounds, rate

NAME = "envelope"

_CALL = ("incr", (1,), {})


def _sample() -> Any:
    from nexus.messaging import Envelope, Kind

    return Envelope(
        kind=Kind.ASK,
        payload=bytes(range(64)),
        codec=2,
        correlation_id=123_456,
        sender="nexus://driver/user/caller",
        target="nexus://worker-1/user/counter",
        trace_id=(0x0AF7651916CD43DD << 64) | 0x8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        trace_flags=1,
        timestamp_ns=time.time_ns(),
    )


def _loop(n: int, body: Callable[[], Any]) -> float:
    for _ in range(max(n // 10, 10)):
        body()
    start = time.perf_counter()
    for _ in range(n):
        body()
    return rate(n, time.perf_counter() - start)


def _measures(n: int) -> list[tuple[str, dict[str, Callable[[], float]]]]:
    from nexus.messaging import (
        LinkPolicy,
        Wire,
        decode_envelope,
        decode_envelope_generic,
        encode_envelope,
        encode_envelope_generic,
    )

    sample = _sample()
    fast_bytes = encode_envelope(sample)
    generic_bytes = encode_envelope_generic(sample)
    for data in (fast_bytes, generic_bytes):
        if decode_envelope(data) != sample or decode_envelope_generic(data) != sample:
            raise BenchmarkError("an envelope did not read back equal to what was written")
    slow = max(n // 20, 200)  # the generic path is ~20x slower; a rate does not depend on the count

    wire = Wire(LinkPolicy.trusted_link())
    if wire.decode(wire.encode(_CALL)[0])[1] != _CALL:
        raise BenchmarkError("Wire round trip changed the message")

    def generic_call() -> None:
        env = _sample()
        env.payload = pickle.dumps(_CALL, 5)
        got = decode_envelope_generic(encode_envelope_generic(env))
        pickle.loads(got.payload)

    return [
        (
            "roundtrip",
            {
                "nexus": lambda: _loop(n, lambda: decode_envelope(encode_envelope(sample))),
                "generic": lambda: _loop(slow, lambda: decode_envelope_generic(encode_envelope_generic(sample))),
            },
        ),
        (
            "encode",
            {
                "nexus": lambda: _loop(n, lambda: encode_envelope(sample)),
                "generic": lambda: _loop(slow, lambda: encode_envelope_generic(sample)),
            },
        ),
        (
            "decode",
            {
                "nexus": lambda: _loop(n, lambda: decode_envelope(fast_bytes)),
                "generic": lambda: _loop(slow, lambda: decode_envelope_generic(generic_bytes)),
            },
        ),
        (
            "wire_call",
            {
                "nexus": lambda: _loop(n, lambda: wire.decode(wire.encode(_CALL)[0])),
                "generic": lambda: _loop(slow, generic_call),
            },
        ),
    ]


def zero_copy_report(megabytes: int = 100) -> tuple[str, dict[str, Any]]:
    """Send a large array through Wire with out-of-band frames; measure what was allocated."""
    import numpy as np

    from nexus.messaging import LinkPolicy, Wire

    wire = Wire(LinkPolicy.trusted_link())
    array = np.arange(megabytes * 1024 * 1024 // 8, dtype=np.float64)
    tracemalloc.start()
    try:
        start = time.perf_counter()
        data, frames = wire.encode({"weights": array})
        _, body = wire.decode(data, [f.toreadonly() for f in frames])
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    same = body["weights"].__array_interface__["data"][0] == array.__array_interface__["data"][0]
    if not same or body["weights"].shape != array.shape:
        raise BenchmarkError("the large array did not come back as a view of the original memory")
    facts = {
        "array_bytes": array.nbytes,
        "envelope_bytes": len(data),
        "frames": len(frames),
        "allocated_peak_bytes": peak,
        "shares_memory": same,
        "seconds": seconds,
    }
    text = (
        f"{megabytes} MiB float64 array through Wire (out-of-band frame): envelope {len(data)} B in band, "
        f"{peak:,} B allocated while encoding + decoding (tracemalloc peak; {peak / array.nbytes:.6%} of the array), "
        f"decoded array shares the original memory: {same}; {seconds * 1e6:.0f} us"
    )
    return text, facts


def run(quick: bool) -> BenchmarkResult:
    n = 20_000 if quick else 200_000
    rounds = 3 if quick else 5
    samples = alternate_rounds(_measures(n), rounds, label=NAME)

    def figure(key: str, label: str, target: Target | None = None) -> Figure:
        return Figure(key, label, "/s", samples[key]["nexus"], samples[key]["generic"], target)

    roundtrip = figure("roundtrip", "encode + decode, 64 B payload", Target.ratio(10))
    figures = [
        roundtrip,
        Figure("roundtrip_time", "encode + decode within 3 us", "/s", roundtrip.nexus_samples, None, Target.at_least(1e6 / 3, "/s")),
        figure("encode", "encode only"),
        figure("decode", "decode only (checked)"),
        figure("wire_call", "small call: pickle + envelope, both ways"),
    ]
    note, facts = zero_copy_report(10 if quick else 100)
    per_call = 1e6 / roundtrip.nexus
    return BenchmarkResult(
        name=NAME,
        title="Envelope: fast path vs the generic FlatBuffers builder",
        figures=figures,
        peer="generic",
        peer_label="generic Builder",
        method=f"median of {rounds} alternating rounds; {n:,} iterations per fast measure",
        notes=[f"fast encode + decode: {per_call:.2f} us per envelope", note],
        environment={"flatbuffers": _fb_version(), "zero-copy allocation (bytes)": facts["allocated_peak_bytes"]},
    )


def _fb_version() -> str:
    from importlib import metadata

    return metadata.version("flatbuffers")
