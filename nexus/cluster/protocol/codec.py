"""The codec of cluster messages: a pickled tuple (protocol 5) in a checked envelope.

The channel is trusted (both ends are processes of one cluster, started by
one user, and a ZeroMQ channel is authenticated with CURVE before anything
is decoded), so bodies are pickle protocol 5; every message still travels in a
checked envelope, and one that does not decode is counted and dropped, never
fatal to the receiver.
"""

from __future__ import annotations

import pickle
from typing import Any

from ...core.errors import EnvelopeError
from ...messaging.envelope import Envelope, Kind, decode_envelope, encode_envelope
from ...messaging.serializers import CodecId

__all__ = ["pack", "unpack"]

_PICKLE = CodecId.PICKLE
_dumps = pickle.dumps
_loads = pickle.loads


def pack(body: tuple[Any, ...], kind: int = Kind.CONTROL) -> bytes:
    return encode_envelope(Envelope(kind, _dumps(body, 5), _PICKLE))


def unpack(data: bytes) -> tuple[Any, ...]:
    envelope = decode_envelope(data)
    if envelope.codec != _PICKLE:
        raise EnvelopeError(f"unexpected codec {envelope.codec} on a cluster channel")
    body = _loads(envelope.payload)
    if not isinstance(body, tuple) or not body or not isinstance(body[0], str):
        raise EnvelopeError("a cluster message must be a tuple starting with its operation name")
    return body
