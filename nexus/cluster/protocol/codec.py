"""The codec of cluster messages: a pickled tuple (protocol 5) in a checked envelope.

The channel is trusted (both ends are processes of one cluster, started by
one user, and a ZeroMQ channel is authenticated with CURVE before anything
is decoded), so bodies are pickle protocol 5; every message still travels in a
checked envelope, and one that does not decode is counted and dropped, never
fatal to the receiver.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from ...core.errors import EnvelopeError
from ...messaging.envelope import Envelope, Kind, decode_envelope, encode_envelope
from ...messaging.serializers import CodecId
from ..values import Blob, _rebuild_blob

__all__ = ["pack", "pack_frames", "unpack", "unpack_frames"]

_PICKLE = CodecId.PICKLE
_dumps = pickle.dumps
_loads = pickle.loads


def pack(body: tuple[Any, ...], kind: int = Kind.CONTROL) -> bytes:
    return encode_envelope(Envelope(kind, _dumps(body, 5), _PICKLE))


def unpack(data: bytes, loads: Callable[[Any], Any] = _loads) -> tuple[Any, ...]:
    envelope = decode_envelope(data)
    if envelope.codec != _PICKLE:
        raise EnvelopeError(f"unexpected codec {envelope.codec} on a cluster channel")
    body = loads(envelope.payload)
    if not isinstance(body, tuple) or not body or not isinstance(body[0], str):
        raise EnvelopeError("a cluster message must be a tuple starting with its operation name")
    return body


class _FramePickler(pickle.Pickler):
    """Pickles a message with the buffers of its blobs out of band: each becomes a frame of its own (no copy)."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is Blob and obj.region is None:
            buffers = [pickle.PickleBuffer(b) if len(b) >= _OUT_OF_BAND else b for b in obj.buffers]
            return _rebuild_blob, (obj.payload, buffers, obj.error, None, obj.refs, obj.oid)
        return NotImplemented


_OUT_OF_BAND = 4096  # smaller buffers go in the message itself


def pack_frames(body: tuple[Any, ...]) -> list[Any]:
    """``body`` as frames for a link between hosts: the envelope, then each large buffer as it is (zero-copy)."""
    import io

    buffers: list[pickle.PickleBuffer] = []
    out = io.BytesIO()
    _FramePickler(out, 5, buffer_callback=buffers.append).dump(body)
    return [encode_envelope(Envelope(Kind.CONTROL, out.getvalue(), _PICKLE)), *(b.raw() for b in buffers)]


def unpack_frames(frames: list[Any], loads: Callable[..., Any] = _loads) -> tuple[Any, ...]:
    """What :func:`pack_frames` made, from the frames received (the buffers are views of them)."""
    buffers = frames[1:]
    return unpack(frames[0], lambda payload: loads(payload, buffers=buffers))
