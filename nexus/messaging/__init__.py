"""Layer 2, messaging: the envelope every message travels in, serializers and message ids.

* :mod:`.envelope` -- the FlatBuffers envelope (schema ``envelope.fbs``), a fast
  encoder/decoder that checks every offset of untrusted input, and the generic
  reference path built on the code ``flatc`` generated (:mod:`.fbs`).
* :mod:`.serializers` -- the Serializer interface and registry: pickle protocol 5
  with out-of-band buffers, cloudpickle, raw bytes, FlatBuffers tables, CBOR, JSON.
* :mod:`.message_ids` -- fixed 32-bit message ids and their registration table.
* :mod:`.wire` -- a link's policy (trusted or not, allowed codecs, maximum size)
  and :class:`Wire`, which applies it.
"""

from ..core.errors import (
    DeserializationError,
    EnvelopeError,
    ForbiddenCodecError,
    MessageIdCollisionError,
    SerializationError,
    UnknownMessageIdError,
)
from .envelope import (
    DEFAULT_MAX_ENVELOPE_SIZE,
    FILE_IDENTIFIER,
    FORMAT_VERSION,
    BufferRef,
    Envelope,
    Flags,
    Kind,
    decode_envelope,
    encode_envelope,
)
from .envelope_reference import decode_envelope_generic, encode_envelope_generic
from .message_ids import MessageIdTable, message_type, stable_message_id
from .serializers import (
    CborSerializer,
    CloudPickleSerializer,
    CodecId,
    FlatBuffersSerializer,
    JsonSerializer,
    PickleSerializer,
    RawSerializer,
    Serializer,
    SerializerRegistry,
    default_registry,
)
from .wire import SAFE_CODECS, LinkPolicy, Wire

__all__ = [
    "DEFAULT_MAX_ENVELOPE_SIZE",
    "FILE_IDENTIFIER",
    "FORMAT_VERSION",
    "SAFE_CODECS",
    "BufferRef",
    "CborSerializer",
    "CloudPickleSerializer",
    "CodecId",
    "DeserializationError",
    "Envelope",
    "EnvelopeError",
    "Flags",
    "FlatBuffersSerializer",
    "ForbiddenCodecError",
    "JsonSerializer",
    "Kind",
    "LinkPolicy",
    "MessageIdCollisionError",
    "MessageIdTable",
    "PickleSerializer",
    "RawSerializer",
    "SerializationError",
    "Serializer",
    "SerializerRegistry",
    "UnknownMessageIdError",
    "Wire",
    "decode_envelope",
    "decode_envelope_generic",
    "default_registry",
    "encode_envelope",
    "encode_envelope_generic",
    "message_type",
    "stable_message_id",
]
