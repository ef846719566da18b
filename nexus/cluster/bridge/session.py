"""The bridge's end of a device's session: handshake, heartbeats, death, and the two streams (no I/O).

A device opens its session with INIT, whose payload says who it is (its
client key: 8 bytes it keeps across reboots, e.g. from its chip's unique id)
and what it can take (MTU, reliable window, heartbeat period); the bridge
answers ACK with a new session number and what both will use (the smaller
MTU and window). An INIT with a key the bridge already has a session for is
that device rebooted: its streams start again at sequence 0, and the owner is
told so that it registers the device's actors again (reusing or replacing
them). A frame other than INIT before a session is open gets a RESET (at most
one per heartbeat), which asks the device to send INIT. A session that hears
nothing valid for ``timeout`` is dead. Fixed structs only (little-endian);
what a frame carries is the owner's to decode (CBOR).

The owner feeds frames and the time in, and takes out frames to write and
events (:class:`Opened`, :class:`Received`, :class:`Closed`), each with what
it needs to act: a closed session hands back the reliable messages the
device never acknowledged, so that calls waiting on them fail instead of
hanging.
"""

from __future__ import annotations

import enum
import secrets
import struct
from typing import NamedTuple

from .frames import DEFAULT_MTU, Frame, FrameType, encode_frame
from .streams import MAX_WINDOW, BestEffortReceiver, ReliableReceiver, ReliableSender

__all__ = ["HELLO", "WELCOME", "BridgeSession", "Closed", "Opened", "Received", "SessionState"]

HELLO = struct.Struct("<8sHBH")  # INIT: client key, MTU, reliable window, heartbeat period (ms)
WELCOME = struct.Struct("<IHBH")  # ACK: session number, MTU, reliable window, heartbeat period (ms)
RELIABLE, BEST_EFFORT = 1, 0


class SessionState(enum.Enum):
    WAITING = "waiting"  # no session: an INIT is needed
    OPEN = "open"
    CLOSED = "closed"  # the bridge let the device go (dead, or the bridge stops): only a new INIT opens it again


class Opened(NamedTuple):
    key: bytes
    session: int
    again: bool  # the same device as before (it rebooted, or lost its session): register its actors again


class Received(NamedTuple):
    reliable: bool
    message_id: int
    payload: bytes


class Closed(NamedTuple):
    key: bytes
    why: str
    unacknowledged: list[tuple[int, bytes]]  # reliable messages the device never confirmed (message id, payload)


class BridgeSession:
    """One serial line's device session, as the bridge sees it."""

    def __init__(self, mtu: int = DEFAULT_MTU, window: int = 8, heartbeat: float = 0.5, timeout: float = 3.0) -> None:
        self.max_mtu, self.max_window = mtu, min(window, MAX_WINDOW)  # what this end takes; a session uses the smaller
        self.mtu, self.window, self.heartbeat, self.timeout = mtu, self.max_window, heartbeat, timeout
        self.state = SessionState.WAITING
        self.key = b""
        self.session = 0
        self.sender = ReliableSender(window=window)
        self.receiver = ReliableReceiver(self._deliver)
        self.latest = BestEffortReceiver()
        self.best_effort_seq = 0
        self.last_heard = 0.0
        self.heard_since_ack = False  # a frame other than INIT came after the last ACK
        self.last_sent = 0.0
        self.last_reset = float("-inf")
        self.output: list[bytes] = []  # frames to write, encoded
        self.events: list[Opened | Received | Closed] = []
        self.rejected = 0  # session frames whose payload did not fit, or that came out of place

    # -- in ----------------------------------------------------------------------------

    def on_frame(self, frame: Frame, now: float) -> None:
        if frame.type is FrameType.INIT:
            self._on_init(frame, now)
            return
        if self.state is not SessionState.OPEN:
            self.rejected += 1
            if now - self.last_reset >= self.heartbeat:  # (a device that talks without a session: tell it to start one)
                self.last_reset = now
                self._write(FrameType.RESET, 0, 0, 0, b"", now)
            return
        self.last_heard = now
        self.heard_since_ack = True
        if frame.type is FrameType.DATA:
            if frame.stream == RELIABLE:
                self.receiver.on_data(frame.seq, frame.message_id, frame.payload)
                self._write(FrameType.ACKNACK, RELIABLE, 0, 0, self.receiver.acknack(), now)
            elif frame.stream == BEST_EFFORT and self.latest.take(frame.seq):
                self.events.append(Received(False, frame.message_id, frame.payload))
            elif frame.stream not in (RELIABLE, BEST_EFFORT):
                self.rejected += 1
        elif frame.type is FrameType.ACKNACK:
            try:
                again = self.sender.on_acknack(frame.payload, now)
            except ValueError:
                self.rejected += 1
                return
            for seq, message_id, payload in again:
                self._write(FrameType.DATA, RELIABLE, seq, message_id, payload, now)
        elif frame.type is FrameType.RESET:  # the device asks to start again: it sends INIT next
            self._close("the device reset its session", SessionState.WAITING)
        # HEARTBEAT: heard, nothing more; ACK: only a device sends INIT, so a bridge never waits for one

    def _on_init(self, frame: Frame, now: float) -> None:
        if len(frame.payload) != HELLO.size:
            self.rejected += 1
            return
        key, mtu, window, heartbeat_ms = HELLO.unpack(frame.payload)
        if not (mtu and window and heartbeat_ms):
            self.rejected += 1
            return
        again = key == self.key
        if self.state is SessionState.OPEN and again and not self.heard_since_ack and self.sender.next_seq == 0 and self.sender.idle:
            # The device said INIT more than once before it heard the ACK (its INITs waited in the line while no
            # bridge read it), and nothing has gone either way since: the same ACK again, not a new session.
            self._write(FrameType.ACK, 0, 0, 0, WELCOME.pack(self.session, self.mtu, self.window, int(self.heartbeat * 1000)), now)
            return
        if self.state is SessionState.OPEN:
            self._close("it started its session again (rebooted)" if again else "another device took the line", SessionState.WAITING)
        session = secrets.randbits(32)  # (not a count: a device must not take a new bridge's session for its old one)
        while session in (0, self.session):
            session = secrets.randbits(32)
        self.key, self.session, self.state = key, session, SessionState.OPEN
        self.mtu, self.window = min(self.max_mtu, mtu), min(self.max_window, window)
        self.sender = ReliableSender(window=self.window)
        self.receiver.reset()
        self.latest.reset()
        self.best_effort_seq = 0
        self.last_heard = now
        self.heard_since_ack = False
        self._write(FrameType.ACK, 0, 0, 0, WELCOME.pack(self.session, self.mtu, self.window, int(self.heartbeat * 1000)), now)
        self.events.append(Opened(key, self.session, again))

    def _deliver(self, message_id: int, payload: bytes) -> None:
        self.events.append(Received(True, message_id, payload))

    # -- out ---------------------------------------------------------------------------

    def send(self, message_id: int, payload: bytes, reliable: bool = True) -> None:
        """Send a message to the device (ConnectionError without a session; StreamFullError if it lags too far)."""
        if self.state is not SessionState.OPEN:
            raise ConnectionError(f"no session with the device ({self.state.value}): it has not sent INIT, or was let go")
        if len(payload) > self.mtu:
            raise ValueError(f"a message of {len(payload)} bytes is over the device's MTU of {self.mtu}")
        if reliable:
            self.sender.send(message_id, payload)
        else:
            self.best_effort_seq = (self.best_effort_seq + 1) & 0xFFFF
            self.output.append(encode_frame(FrameType.DATA, BEST_EFFORT, self.best_effort_seq, message_id, payload))

    def tick(self, now: float) -> None:
        """What the time says: a dead device, a heartbeat due, frames the window lets go or that wait too long."""
        if self.state is not SessionState.OPEN:
            return
        if now - self.last_heard > self.timeout:
            self._close(f"the device was silent for {now - self.last_heard:.1f} s (timeout {self.timeout:g} s)", SessionState.CLOSED)
            return
        for seq, message_id, payload in self.sender.poll(now):
            self._write(FrameType.DATA, RELIABLE, seq, message_id, payload, now)
        if now - self.last_sent >= self.heartbeat:
            self._write(FrameType.HEARTBEAT, 0, 0, 0, b"", now)

    def close(self, why: str) -> None:
        """The bridge lets the device go (it stops, or the port closed)."""
        if self.state is SessionState.OPEN:
            self._close(why, SessionState.CLOSED)
        self.state = SessionState.CLOSED

    def _close(self, why: str, then: SessionState) -> None:
        self.events.append(Closed(self.key, why, self.sender.reset()))
        self.state = then

    def _write(self, kind: FrameType, stream: int, seq: int, message_id: int, payload: bytes, now: float) -> None:
        self.output.append(encode_frame(kind, stream, seq, message_id, payload))
        self.last_sent = now

    def take(self) -> tuple[list[bytes], list[Opened | Received | Closed]]:
        """The frames to write and the events for the owner, since the last take."""
        output, events = self.output, self.events
        self.output, self.events = [], []
        return output, events
