"""Hypothesis strategies shared by the messaging tests."""

from __future__ import annotations

from hypothesis import strategies as st

from nexus.messaging import FORMAT_VERSION, BufferRef, Envelope, encode_envelope, encode_envelope_generic

U8 = st.integers(0, 0xFF)
U32 = st.integers(0, 0xFFFF_FFFF)
U64 = st.integers(0, 0xFFFF_FFFF_FFFF_FFFF)
I64 = st.integers(-(1 << 63), (1 << 63) - 1)

buffer_refs = st.builds(BufferRef, U64, U64, U64)


@st.composite
def envelopes(draw: st.DrawFn) -> Envelope:
    return Envelope(
        kind=draw(U8),
        payload=draw(st.binary(max_size=300)),
        codec=draw(U8),
        message_id=draw(U32),
        correlation_id=draw(U64),
        sender=draw(st.text(max_size=40)),
        target=draw(st.text(max_size=40)),
        trace_id=draw(st.integers(0, (1 << 128) - 1)),
        span_id=draw(U64),
        trace_flags=draw(U8),
        timestamp_ns=draw(I64),
        flags=draw(U32),
        buffers=tuple(draw(st.lists(buffer_refs, max_size=4))),
        version=draw(st.integers(0, FORMAT_VERSION)),
    )


@st.composite
def encoded_envelopes(draw: st.DrawFn) -> bytes:
    """Valid envelopes, from the fast encoder or from the generic builder."""
    envelope = draw(envelopes())
    return encode_envelope(envelope) if draw(st.booleans()) else encode_envelope_generic(envelope)
