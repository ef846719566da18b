"""A link's view of messaging: objects to envelopes and back, under the link's policy.

A :class:`LinkPolicy` says what a link accepts: whether it is *trusted* (its
peer is one of our own processes, so codecs that run code on load are fine),
which codecs it allows, and the largest envelope it takes. :class:`Wire`
applies it: ``encode`` serializes a body into an envelope plus out-of-band
frames, ``decode`` checks an envelope and its codec *before* any byte of the
payload is deserialized.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.errors import DeserializationError, EnvelopeError, ForbiddenCodecError, NexusError, SerializationError
from .envelope import DEFAULT_MAX_ENVELOPE_SIZE, BufferRef, Envelope, Kind, decode_envelope, encode_envelope
from .message_ids import DEFAULT_TABLE, MessageIdTable
from .serializers import CodecId, Serializer, SerializerRegistry, default_registry

__all__ = ["SAFE_CODECS", "LinkPolicy", "Wire"]

SAFE_CODECS = frozenset({CodecId.RAW, CodecId.FLATBUFFERS, CodecId.CBOR, CodecId.JSON})
"""Codecs that never run code on load: what an untrusted peer may send."""


@dataclass(frozen=True)
class LinkPolicy:
    """What a link accepts.

    ``trusted``: the peer is one of our own processes; codecs that run code on
    load (pickle, cloudpickle) are allowed. Untrusted (the default) allows only
    codecs that do not.
    ``codecs``: restrict the link further to these codec ids (``None``: every
    registered codec the trust level allows).
    ``max_envelope_size``: larger envelopes are rejected unread.
    """

    trusted: bool = False
    codecs: frozenset[int] | None = None
    max_envelope_size: int = DEFAULT_MAX_ENVELOPE_SIZE
    default_codec: int | None = None

    def __post_init__(self) -> None:
        if self.codecs is not None:
            object.__setattr__(self, "codecs", frozenset(int(c) for c in self.codecs))
        if self.max_envelope_size < 136:
            raise ValueError(f"max_envelope_size must be at least 136 bytes (an empty envelope), not {self.max_envelope_size}")

    @classmethod
    def trusted_link(cls, **options: Any) -> LinkPolicy:
        """A link between processes of one cluster: every codec, pickle by default."""
        return cls(trusted=True, **options)

    @classmethod
    def safe_link(cls, **options: Any) -> LinkPolicy:
        """A link that accepts only codecs that never run code on load (raw, FlatBuffers, CBOR, JSON; or fewer, via ``codecs``)."""
        return cls(trusted=False, **options)


def _codec_name(registry: SerializerRegistry, codec: int) -> str:
    found = registry.find(codec)
    return f"{codec} ({found.name})" if found is not None else str(codec)


class Wire:
    """Encodes bodies into envelopes and decodes them back, as one link's policy allows.

    Out-of-band buffers: ``encode`` returns them beside the envelope as frames,
    and the envelope lists them as :class:`BufferRef` with ``segment == 0`` and
    ``offset`` the frame's index. A ``place_buffer`` callable may put them into
    shared memory instead and return the ref; ``resolve_buffer`` turns refs with
    ``segment != 0`` back into memory on the receiving side.
    """

    def __init__(
        self,
        policy: LinkPolicy | None = None,
        registry: SerializerRegistry | None = None,
        message_ids: MessageIdTable | None = None,
        *,
        place_buffer: Callable[[memoryview], BufferRef | None] | None = None,
        resolve_buffer: Callable[[BufferRef], Any] | None = None,
    ) -> None:
        self.policy = policy or LinkPolicy()
        self.registry = default_registry() if registry is None else registry
        self.message_ids = DEFAULT_TABLE if message_ids is None else message_ids
        self.place_buffer = place_buffer
        self.resolve_buffer = resolve_buffer
        self._allowed: dict[int, Serializer] = {}
        for serializer in self.registry:
            if self._permits(serializer):
                self._allowed[serializer.codec_id] = serializer
        if self.policy.codecs is not None:
            for codec in self.policy.codecs:
                found = self.registry.find(codec)
                if found is None:
                    raise ValueError(f"the policy allows codec {codec}, which is not registered (known: {self.registry.describe()})")
                if found.runs_code_on_load and not self.policy.trusted:
                    raise ValueError(f"codec {found.name} runs code when loading; allow it only on a trusted link (trusted=True)")
        default = self.policy.default_codec
        if default is None:
            preference: list[int] = [CodecId.PICKLE, CodecId.CLOUDPICKLE] if self.policy.trusted else []
            preference += [CodecId.CBOR, CodecId.JSON, CodecId.FLATBUFFERS, CodecId.RAW]
            candidates = [c for c in preference if c in self._allowed] or sorted(self._allowed)
            if not candidates:
                raise ValueError("this link allows no codec at all; register one or widen LinkPolicy.codecs")
            default = candidates[0]
        elif default not in self._allowed:
            raise ValueError(f"default codec {_codec_name(self.registry, default)} is not allowed on this link")
        self.default_codec = int(default)

    def _permits(self, serializer: Serializer) -> bool:
        if serializer.runs_code_on_load and not self.policy.trusted:
            return False
        return self.policy.codecs is None or serializer.codec_id in self.policy.codecs

    def serializer_for(self, codec: int) -> Serializer:
        """The serializer of ``codec`` if this link allows it; :class:`ForbiddenCodecError` otherwise."""
        serializer = self._allowed.get(codec)
        if serializer is None:
            if codec in self.registry and self.registry.get(codec).runs_code_on_load and not self.policy.trusted:
                reason = "it runs code when loading and this link is not trusted"
            elif codec in self.registry:
                reason = "this link restricts itself to other codecs"
            else:
                reason = "no serializer is registered under it"
            allowed = ", ".join(f"{s.codec_id} {s.name}" for s in self._allowed.values()) or "none"
            raise ForbiddenCodecError(f"codec {_codec_name(self.registry, codec)} is not accepted: {reason} (allowed: {allowed})")
        return serializer

    # -- sending ----------------------------------------------------------------------

    def encode(
        self,
        body: Any,
        *,
        kind: int = Kind.USER,
        codec: int | None = None,
        target: str = "",
        sender: str = "",
        correlation_id: int = 0,
        message_id: int | None = None,
        trace_id: int = 0,
        span_id: int = 0,
        trace_flags: int = 0,
        flags: int = 0,
        timestamp_ns: int | None = None,
        out_of_band: bool = True,
    ) -> tuple[bytes, list[memoryview]]:
        """Serialize ``body`` and wrap it in an envelope; returns the envelope and the out-of-band frames."""
        codec = self.default_codec if codec is None else codec
        if codec == CodecId.NONE:
            if body is not None:
                raise SerializationError("codec NONE carries no payload; the body must be None")
            payload: bytes = b""
            oob: list[Any] = []
        else:
            serializer = self.serializer_for(codec)
            oob = [] if out_of_band and serializer.supports_out_of_band else None  # type: ignore[assignment]
            try:
                payload = serializer.dumps(body, oob)
            except NexusError:
                raise
            except Exception as exc:
                raise SerializationError(f"cannot serialize {type(body).__qualname__} with {serializer.name}: {exc}") from exc
            oob = oob or []
        frames: list[memoryview] = []
        refs: list[BufferRef] = []
        for buffer in oob:
            view = memoryview(buffer).cast("B")  # flat bytes; a numpy array's buffer keeps its owner alive
            ref = self.place_buffer(view) if self.place_buffer is not None else None
            if ref is None:
                ref = BufferRef(0, len(frames), view.nbytes)
                frames.append(view)
            refs.append(ref)
        if message_id is None:
            message_id = self.message_ids.id_of(type(body))
        envelope = Envelope(
            kind,
            payload,
            codec,
            message_id,
            correlation_id,
            sender,
            target,
            trace_id,
            span_id,
            trace_flags,
            time.time_ns() if timestamp_ns is None else timestamp_ns,
            flags,
            tuple(refs),
        )
        return encode_envelope(envelope, self.policy.max_envelope_size), frames

    # -- receiving ----------------------------------------------------------------------

    def decode_envelope(self, data: bytes | bytearray | memoryview) -> Envelope:
        """Check and read the envelope only (no payload decoding): size, structure, codec, message id."""
        envelope = decode_envelope(data, self.policy.max_envelope_size)
        if envelope.codec != CodecId.NONE:
            serializer = self.serializer_for(envelope.codec)
            if envelope.buffers and not serializer.supports_out_of_band:
                raise EnvelopeError(f"codec {serializer.name} takes no out-of-band buffers, but the envelope lists {len(envelope.buffers)}")
        elif envelope.payload or envelope.buffers:
            raise EnvelopeError("codec NONE carries no payload, but the envelope has one")
        if envelope.message_id:
            self.message_ids.type_of(envelope.message_id)
        return envelope

    def decode(self, data: bytes | bytearray | memoryview, frames: Sequence[Any] = ()) -> tuple[Envelope, Any]:
        """Read an envelope from untrusted bytes and deserialize its body.

        Everything wrong with the input raises an :class:`EnvelopeError`
        (``ForbiddenCodecError``, ``UnknownMessageIdError`` and
        ``DeserializationError`` are kinds of it); the codec and the message id
        are checked before any byte of the payload is deserialized.
        """
        envelope = self.decode_envelope(data)
        return envelope, self.open(envelope, frames)

    def open(self, envelope: Envelope, frames: Sequence[Any] = ()) -> Any:
        """Deserialize the body of an envelope that :meth:`decode_envelope` accepted."""
        if envelope.codec == CodecId.NONE:
            return None
        serializer = self.serializer_for(envelope.codec)
        message_type = self.message_ids.type_of(envelope.message_id) if envelope.message_id else None
        if envelope.buffers and not serializer.supports_out_of_band:
            raise EnvelopeError(f"codec {serializer.name} takes no out-of-band buffers, but the envelope lists {len(envelope.buffers)}")
        buffers = [self._resolve(ref, frames) for ref in envelope.buffers] if envelope.buffers else ()
        try:
            return serializer.loads(envelope.payload, buffers, message_type)
        except EnvelopeError:
            raise
        except Exception as exc:
            raise DeserializationError(
                f"payload ({len(envelope.payload)} bytes, codec {serializer.name}) does not decode: {type(exc).__name__}: {exc}"
            ) from exc

    def _resolve(self, ref: BufferRef, frames: Sequence[Any]) -> Any:
        if ref.segment == 0:
            if ref.offset >= len(frames):
                raise EnvelopeError(f"the envelope refers to frame {ref.offset}, but only {len(frames)} arrived with it")
            frame = frames[ref.offset]
            size = frame.nbytes if isinstance(frame, memoryview) else len(frame)
            if size != ref.length:
                raise EnvelopeError(f"frame {ref.offset} holds {size} bytes, the envelope says {ref.length}")
            return frame
        if self.resolve_buffer is None:
            raise EnvelopeError(f"the envelope refers to shared-memory segment {ref.segment}, but this link has no object store")
        try:
            return self.resolve_buffer(ref)
        except EnvelopeError:
            raise
        except Exception as exc:
            raise EnvelopeError(f"out-of-band buffer {ref} cannot be resolved: {type(exc).__name__}: {exc}") from exc
