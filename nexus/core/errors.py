"""The one exception hierarchy of Nexus.

Every error Nexus raises derives from :class:`NexusError`. Where a builtin
exception describes the same failure (a timeout, a bad value), the Nexus error
also derives from it, so ``except TimeoutError`` keeps working.

This module lives in the runtime core (standard library only) so that every
layer above can share it; later layers add their errors here.
"""

from __future__ import annotations

__all__ = [
    "ActorDiedError",
    "ActorStoppingError",
    "AskTimeoutError",
    "DeadLetterError",
    "DeserializationError",
    "EnvelopeError",
    "ExpectTimeoutError",
    "ForbiddenCodecError",
    "FutureCancelledError",
    "GetTimeoutError",
    "InvalidPropsError",
    "InvalidStateError",
    "MailboxFullError",
    "MessageIdCollisionError",
    "NameTakenError",
    "NexusError",
    "ObjectLostError",
    "ObjectStoreFullError",
    "PendingCallsLimitExceededError",
    "SerializationError",
    "SystemShutdownError",
    "TaskCancelledError",
    "UnknownMessageIdError",
    "WaitTimeoutError",
    "WorkerCrashedError",
]


class NexusError(Exception):
    """Base class of every error raised by Nexus."""


class SystemShutdownError(NexusError, RuntimeError):
    """The actor system is shut down: it accepts no new actors or asks."""


class NameTakenError(NexusError, ValueError):
    """An actor with this name already exists under the same parent."""


class InvalidPropsError(NexusError, TypeError):
    """Props that cannot make a working actor (for example an async actor on a thread dispatcher)."""


class MailboxFullError(NexusError):
    """A bounded mailbox is full and its overflow policy is ``FAIL`` (or ``BLOCK`` timed out)."""


class DeadLetterError(NexusError):
    """A message could not be delivered: its target is not running.

    Raised by the future of an ``ask`` whose message went to dead letters.
    """


class InvalidStateError(NexusError, RuntimeError):
    """An operation does not fit the current state (for example completing a done future)."""


class FutureCancelledError(NexusError):
    """The future was cancelled before it completed."""


class WaitTimeoutError(NexusError, TimeoutError):
    """Waiting for a future's result took longer than the given timeout.

    The future itself is unaffected and may still complete later.
    """


class AskTimeoutError(NexusError, TimeoutError):
    """No reply to an ``ask`` arrived within its timeout; a late reply goes to dead letters."""


class ExpectTimeoutError(NexusError, TimeoutError):
    """``expect`` saw no matching message within its timeout."""


class ActorStoppingError(NexusError):
    """The actor is being stopped, so a blocking wait inside it (``expect``) was abandoned."""


# -- messaging (layer 2) ------------------------------------------------------


class EnvelopeError(NexusError, ValueError):
    """Bytes from the wire are not an envelope this reader accepts.

    Raised for truncated, oversized, garbled or adversarial input, for an
    envelope of a newer incompatible format, and (as the subclasses below) for
    a codec the link forbids, an unknown message id or a payload that does not
    decode. A receiver catches this one class, counts the envelope as rejected
    and keeps going.
    """


class ForbiddenCodecError(EnvelopeError):
    """The envelope's codec is not allowed on this link.

    Codecs that run code while loading (pickle, cloudpickle) are accepted only
    on links marked trusted; the payload is rejected before any byte of it is read.
    """


class UnknownMessageIdError(EnvelopeError):
    """The envelope names a message id that no type is registered under on this side."""


class DeserializationError(EnvelopeError):
    """The payload does not decode with its codec (or does not fit its message type)."""


class SerializationError(NexusError, TypeError):
    """An object cannot be serialized with the chosen codec; the message names the object."""


class MessageIdCollisionError(NexusError, ValueError):
    """Two different message types were registered under the same message id."""


# -- the cluster (layer 3) ----------------------------------------------------------


class GetTimeoutError(NexusError, TimeoutError):
    """``nexus.get`` waited longer than its timeout; the task keeps running and its ref stays valid."""


class ActorDiedError(NexusError):
    """The actor is dead (killed, its constructor raised, or its process exited); calls to it fail with this."""


class WorkerCrashedError(NexusError):
    """The worker process running a task exited before the task finished."""


class TaskCancelledError(NexusError):
    """The task was cancelled with ``nexus.cancel`` before it finished."""


class ObjectLostError(NexusError):
    """The object is no longer stored anywhere (every reference to it was dropped, or its only copy was lost)."""


class ObjectStoreFullError(NexusError, MemoryError):
    """The object store has no room for an object, and nothing could be spilled to disk to make room."""


class PendingCallsLimitExceededError(NexusError):
    """An actor already has ``max_pending_calls`` calls queued or running; the new call was not sent."""
