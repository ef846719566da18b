"""The reference path of the envelope: written and read with ``flatbuffers.Builder`` and the code ``flatc`` generated.

Slow, and its reader trusts its input (the generated accessors do not check
bounds): it exists so that the fast path of :mod:`.envelope` is tested
against the official implementation of the format. Never use it on the wire.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import EnvelopeError
from .envelope import _U64, FILE_IDENTIFIER, BufferRef, Envelope

__all__ = ["decode_envelope_generic", "encode_envelope_generic"]


def encode_envelope_generic(envelope: Envelope) -> bytes:
    """Write ``envelope`` with ``flatbuffers.Builder`` and the generated code (the slow reference path)."""
    import flatbuffers

    from .fbs import Envelope as fb_env
    from .fbs import MessageHeader as fb_hdr
    from .fbs.BufferRef import CreateBufferRef
    from .fbs.TraceContext import CreateTraceContext

    e = envelope
    b = flatbuffers.Builder(256 + len(e.payload))
    sender = b.CreateString(e.sender) if e.sender else 0
    target = b.CreateString(e.target) if e.target else 0
    payload = b.CreateByteVector(bytes(e.payload))
    buffers = 0
    if e.buffers:
        fb_env.EnvelopeStartBuffersVector(b, len(e.buffers))
        for ref in reversed(e.buffers):
            CreateBufferRef(b, ref.segment, ref.offset, ref.length)
        buffers = b.EndVector()
    fb_hdr.MessageHeaderStart(b)
    fb_hdr.MessageHeaderAddKind(b, e.kind)
    fb_hdr.MessageHeaderAddCodec(b, e.codec)
    fb_hdr.MessageHeaderAddMessageId(b, e.message_id)
    fb_hdr.MessageHeaderAddCorrelationId(b, e.correlation_id)
    if sender:
        fb_hdr.MessageHeaderAddSender(b, sender)
    if target:
        fb_hdr.MessageHeaderAddTarget(b, target)
    if e.trace_id or e.span_id or e.trace_flags:
        fb_hdr.MessageHeaderAddTrace(b, CreateTraceContext(b, e.trace_id >> 64, e.trace_id & _U64, e.span_id, e.trace_flags))
    fb_hdr.MessageHeaderAddTimestampNs(b, e.timestamp_ns)
    fb_hdr.MessageHeaderAddFlags(b, e.flags)
    header = fb_hdr.MessageHeaderEnd(b)
    fb_env.EnvelopeStart(b)
    fb_env.EnvelopeAddVersion(b, e.version)
    fb_env.EnvelopeAddHeader(b, header)
    fb_env.EnvelopeAddPayload(b, payload)
    if buffers:
        fb_env.EnvelopeAddBuffers(b, buffers)
    b.Finish(fb_env.EnvelopeEnd(b), file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


def _generic_payload(env: Any) -> bytes:
    """The payload bytes through the runtime's Table reader (the generated per-byte accessor costs ~0.5 us a byte)."""
    tab = env._tab
    o = tab.Offset(8)
    if not o:
        return b""
    start = tab.Vector(o)
    return bytes(tab.Bytes[start : start + tab.VectorLen(o)])


def decode_envelope_generic(data: bytes) -> Envelope:
    """Read an envelope with the generated accessors (trusted input only: they do not check bounds)."""
    from .fbs.Envelope import Envelope as FbEnvelope

    env = FbEnvelope.GetRootAs(data, 0)
    hdr = env.Header()
    if hdr is None:
        raise EnvelopeError("malformed envelope: no header")
    trace = hdr.Trace()
    trace_hi, trace_lo, span_id, trace_flags = (
        (trace.TraceIdHi(), trace.TraceIdLo(), trace.SpanId(), trace.TraceFlags()) if trace is not None else (0, 0, 0, 0)
    )
    buffers = []
    for i in range(env.BuffersLength()):
        ref = env.Buffers(i)
        assert ref is not None
        buffers.append(BufferRef(ref.Segment(), ref.Offset(), ref.Length()))
    sender = hdr.Sender()
    target = hdr.Target()
    return Envelope(
        hdr.Kind(),
        _generic_payload(env),
        hdr.Codec(),
        hdr.MessageId(),
        hdr.CorrelationId(),
        sender.decode() if isinstance(sender, bytes) else (sender or ""),
        target.decode() if isinstance(target, bytes) else (target or ""),
        (trace_hi << 64) | trace_lo,
        span_id,
        trace_flags,
        hdr.TimestampNs(),
        hdr.Flags(),
        tuple(buffers),
        env.Version(),
    )
