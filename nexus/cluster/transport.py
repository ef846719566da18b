"""The Transport contract: how the driver and a worker process exchange envelopes.

A transport makes *channels*, each joining the driver to one child process.
The driver calls :meth:`Transport.open_channel`, which returns its own end
and a :class:`ChannelSpec` for the child: a string address plus file
descriptors the child must inherit. The address may hold secrets (a key
that authenticates the channel): the driver hands it to the child through
an inherited pipe, never on the command line. The child calls
:meth:`Transport.attach` with that spec. Implementations are plugins,
registered under the ``nexus.transports`` entry-point group and loaded by
name with :func:`load_transport`; the install command installs the built-in
ones (``shm``: shared-memory rings, the default on one host; ``zmq``:
ZeroMQ over ipc or tcp, authenticated with CURVE). A transport name may
carry an option after a ``+`` (``zmq+tcp``), given to
:meth:`Transport.configured`.

Whatever arrives on a channel is untrusted until the transport has
authenticated the peer, and a receiver never trusts a peer's bookkeeping:
a connection that finds its incoming data malformed (a ring record that
does not fit the ring) raises :class:`ChannelCorruptError`, and its owner
drops the channel.

A :class:`Connection` moves one message at a time: the envelope bytes plus
optional frames (out-of-band buffers). It is thread-safe for senders; one
thread at a time receives. Receiving never blocks inside the connection: the
receiver spins with :meth:`Connection.try_recv`, then parks on the
connection's :meth:`~Connection.fileno` with ``select`` after
:meth:`~Connection.park_begin` says it may, so one thread can wait on many
connections (and on process-exit descriptors) at once.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from importlib import metadata

__all__ = [
    "ChannelCorruptError",
    "ChannelSpec",
    "Connection",
    "Transport",
    "TransportClosedError",
    "available_transports",
    "load_transport",
    "make_transport",
    "transport_target",
]

ENTRY_POINT_GROUP = "nexus.transports"

Message = tuple[bytes, list[Any]]


class TransportClosedError(ConnectionError):
    """The channel is closed (by this side, or its peer went away)."""


class ChannelCorruptError(TransportClosedError):
    """What the peer wrote cannot be read (a record header outside the channel's bounds): the channel is unusable."""


@dataclass(frozen=True)
class ChannelSpec:
    """What a child needs to attach to a channel: the transport's name, an address and fds to inherit."""

    transport: str
    address: str
    pass_fds: tuple[int, ...] = ()

    def encode(self) -> str:
        return f"{self.transport}|{self.address}"

    @staticmethod
    def decode(text: str) -> ChannelSpec:
        transport, _, address = text.partition("|")
        if not address:
            raise ValueError(f"not a channel spec: {text!r}")
        return ChannelSpec(transport, address)


class Connection(abc.ABC):
    """One end of a channel."""

    max_message: int = 1 << 24
    peer_alive: Callable[[], bool] | None = None
    """Set by the owner of the channel when it can tell: a send waiting for room gives up (TransportClosedError)
    once this returns False, instead of waiting for ever on a peer that died."""

    @abc.abstractmethod
    def send(self, data: bytes, frames: Sequence[Any] = ()) -> None:
        """Send one message; blocks while the peer's buffer is full (back-pressure)."""

    def try_send(self, data: bytes, frames: Sequence[Any] = ()) -> bool:
        """Send one message if the peer has room for it now; False (nothing sent) when it has not.

        The driver sends this way from threads that must never wait for one
        peer (a worker that stopped reading must not stall the others). A
        transport that cannot tell waits, as :meth:`send` does.
        """
        self.send(data, frames)
        return True

    @abc.abstractmethod
    def try_recv(self) -> Message | None:
        """The next message, or ``None`` at once when there is none."""

    @abc.abstractmethod
    def fileno(self) -> int:
        """A descriptor that becomes readable when a message may have arrived (after :meth:`park_begin`)."""

    def park_begin(self) -> bool:
        """Announce that the receiver is about to sleep; False when a message is already waiting."""
        return True

    def park_end(self) -> None:  # noqa: B027  (optional hook)
        """The receiver woke up (or decided not to sleep); reset the wake-up state."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release this end; further sends raise :class:`TransportClosedError`."""

    @property
    def stats(self) -> dict[str, int]:
        return {}


class Transport(abc.ABC):
    """Makes channels between the driver and its child processes."""

    name: ClassVar[str]

    @abc.abstractmethod
    def open_channel(self, label: str) -> tuple[Connection, ChannelSpec]:
        """Driver side: a new channel; returns the driver's end and what the child needs to attach."""

    @classmethod
    @abc.abstractmethod
    def attach(cls, spec: ChannelSpec) -> Connection:
        """Child side: the child's end of the channel ``spec`` describes."""

    @classmethod
    def configured(cls, option: str) -> Transport:
        """The transport named ``<name>+<option>`` (``zmq+tcp``); one that takes no option says so."""
        raise ValueError(f"the {cls.name!r} transport takes no option (got {cls.name}+{option})")

    @classmethod
    def sized(cls, channel_bytes: int) -> Transport:
        """The transport by its name alone, for a cluster whose channels hold ``channel_bytes`` each way.

        A transport whose channels have no fixed size ignores it.
        """
        return cls()

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release what the transport holds beyond its channels (sockets, temp folders)."""


def transport_target(cls: type[Transport]) -> str:
    """Where ``cls`` is imported from, as ``module:Class`` (see :func:`load_transport`)."""
    return f"{cls.__module__}:{cls.__qualname__}"


def available_transports() -> dict[str, metadata.EntryPoint]:
    from importlib import metadata  # scanning the installed packages is slow: only when asked

    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def load_transport(name: str, target: str | None = None) -> type[Transport]:
    """The transport class registered under ``name`` in the ``nexus.transports`` entry-point group.

    ``target`` (``module:Class``, what :func:`transport_target` gives) loads
    it without scanning the installed packages' metadata: a worker process
    is told its driver's class this way, which saves it ~15 ms at start.
    """
    if target is not None:
        module, _, attr = target.partition(":")
        cls = getattr(importlib.import_module(module), attr)
    else:
        found = available_transports()
        if name not in found:
            known = ", ".join(sorted(found)) or "none (is nexus installed with pip install -e .?)"
            raise ValueError(f"unknown transport {name!r}; installed transports: {known}")
        cls = found[name].load()
    if not (isinstance(cls, type) and issubclass(cls, Transport)):
        raise TypeError(f"entry point {name!r} of {ENTRY_POINT_GROUP} is {cls!r}, not a Transport subclass")
    return cls


def make_transport(transport: str | Transport, channel_bytes: int = 8 << 20) -> Transport:
    """A transport from what ``nexus.init(transport=...)`` takes: a name (``"shm"``), a name with an option
    (``"zmq+tcp"``), or an instance (used as it is). ``channel_bytes``: ``ClusterConfig.channel_bytes``."""
    if isinstance(transport, Transport):
        return transport
    if not isinstance(transport, str):
        raise TypeError(f"transport is a name such as 'shm' or 'zmq+tcp', or a Transport, not {type(transport).__qualname__}")
    name, plus, option = transport.partition("+")
    cls = load_transport(name)
    if plus:
        return cls.configured(option)
    return cls.sized(channel_bytes)
