"""The bridge's end of a device session, driven by frames and a clock (the device side played by the test)."""

from __future__ import annotations

import pytest

from nexus.cluster.bridge.frames import Frame, FrameReader, FrameType
from nexus.cluster.bridge.session import HELLO, WELCOME, BridgeSession, Closed, Opened, Received, SessionState
from nexus.cluster.bridge.streams import ACKNACK

KEY = b"microbit"


def _frames(session: BridgeSession) -> tuple[list[Frame], list]:
    output, events = session.take()
    reader = FrameReader(mtu=0xFFFF)
    return [f for raw in output for f in reader.feed(raw)], events


def _init(key: bytes = KEY, mtu: int = 64, window: int = 4, heartbeat_ms: int = 500) -> Frame:
    return Frame(FrameType.INIT, 0, 0, 0, HELLO.pack(key, mtu, window, heartbeat_ms))


def _open(now: float = 0.0) -> BridgeSession:
    session = BridgeSession(mtu=128, window=8, heartbeat=0.5, timeout=3.0)
    session.on_frame(_init(), now)
    return session


def test_init_opens_a_session_with_what_both_can_take() -> None:
    session = _open()
    frames, events = _frames(session)
    assert [f.type for f in frames] == [FrameType.ACK]
    number, mtu, window, heartbeat_ms = WELCOME.unpack(frames[0].payload)
    assert (mtu, window, heartbeat_ms) == (64, 4, 500), "the smaller MTU and window"
    assert events == [Opened(KEY, number, again=False)]
    assert session.state is SessionState.OPEN


def test_messages_both_ways_on_both_streams() -> None:
    session = _open()
    session.take()
    session.on_frame(Frame(FrameType.DATA, 1, 0, 0x1234, b"reliable"), 0.1)
    session.on_frame(Frame(FrameType.DATA, 1, 0, 0x1234, b"reliable"), 0.1)  # sent again: dropped
    session.on_frame(Frame(FrameType.DATA, 0, 5, 0x99, b"telemetry"), 0.1)
    session.on_frame(Frame(FrameType.DATA, 0, 4, 0x99, b"older"), 0.1)
    frames, events = _frames(session)
    assert events == [Received(True, 0x1234, b"reliable"), Received(False, 0x99, b"telemetry")]
    assert [ACKNACK.unpack(f.payload) for f in frames if f.type is FrameType.ACKNACK] == [(1, 0), (1, 0)]
    session.send(0x55, b"call")
    session.send(0x56, b"reading", reliable=False)
    session.tick(0.2)
    frames, _ = _frames(session)
    data = [(f.stream, f.seq, f.message_id, f.payload) for f in frames if f.type is FrameType.DATA]
    assert data == [(0, 1, 0x56, b"reading"), (1, 0, 0x55, b"call")]
    session.tick(0.6)  # no answer for the rto: sent again
    assert [(f.type, f.seq) for f in _frames(session)[0] if f.type is FrameType.DATA] == [(FrameType.DATA, 0)]
    session.on_frame(Frame(FrameType.ACKNACK, 1, 0, 0, ACKNACK.pack(1, 0)), 0.7)
    assert session.sender.idle
    with pytest.raises(ValueError, match="over the device's MTU of 64"):
        session.send(1, b"x" * 65)


def test_a_rebooted_device_is_recognised_and_what_it_never_confirmed_is_handed_back() -> None:
    session = _open()
    session.send(0x55, b"call")
    session.tick(0.1)
    first = session.session
    session.take()
    session.on_frame(_init(), 1.0)  # the same key again: it rebooted
    frames, events = _frames(session)
    assert [f.type for f in frames] == [FrameType.ACK]
    assert events[0] == Closed(KEY, "it started its session again (rebooted)", [(0x55, b"call")])
    assert events[1] == Opened(KEY, session.session, again=True) and session.session != first
    session.on_frame(Frame(FrameType.DATA, 1, 0, 7, b"from sequence 0 again"), 1.1)
    assert _frames(session)[1] == [Received(True, 7, b"from sequence 0 again")]
    session.on_frame(_init(key=b"another!"), 2.0)
    events = _frames(session)[1]
    assert events[0].why == "another device took the line" and events[1] == Opened(b"another!", session.session, again=False)


def test_a_device_talking_without_a_session_is_asked_to_start_one() -> None:
    session = BridgeSession(heartbeat=0.5)
    for at in (0.0, 0.1, 0.2, 0.6):
        session.on_frame(Frame(FrameType.DATA, 1, 3, 1, b"?"), at)
    frames, events = _frames(session)
    assert [f.type for f in frames] == [FrameType.RESET, FrameType.RESET], "one RESET per heartbeat, not one per frame"
    assert events == [] and session.rejected == 4
    with pytest.raises(ConnectionError, match="no session with the device"):
        session.send(1, b"")


def test_a_silent_device_is_let_go_and_a_malformed_session_frame_is_counted() -> None:
    session = _open()
    session.on_frame(Frame(FrameType.INIT, 0, 0, 0, b"short"), 0.5)
    session.on_frame(_init(mtu=0), 0.5)
    session.on_frame(Frame(FrameType.ACKNACK, 1, 0, 0, b"\x00"), 0.5)
    assert session.rejected == 3 and session.state is SessionState.OPEN
    session.take()
    session.tick(1.0)
    assert [f.type for f in _frames(session)[0]] == [FrameType.HEARTBEAT], "nothing went out for a heartbeat period"
    session.tick(1.2)
    assert _frames(session)[0] == [], "a beat went out just now"
    session.send(9, b"pending")
    session.tick(3.6)
    _, events = _frames(session)
    assert events == [Closed(KEY, "the device was silent for 3.1 s (timeout 3 s)", [(9, b"pending")])]
    assert session.state is SessionState.CLOSED
    with pytest.raises(ConnectionError, match="was let go"):
        session.send(1, b"")
    session.on_frame(_init(), 5.0)  # it comes back
    assert _frames(session)[1][-1].again


def test_an_init_sent_twice_before_the_ack_is_answered_with_the_same_session() -> None:
    session = _open()
    first = session.session
    session.take()
    session.on_frame(_init(), 0.01)  # (it waited in the line behind the first)
    frames, events = _frames(session)
    assert [f.type for f in frames] == [FrameType.ACK] and WELCOME.unpack(frames[0].payload)[0] == first
    assert events == [] and session.session == first
    session.on_frame(Frame(FrameType.HEARTBEAT, 0, 0, 0, b""), 0.02)
    session.on_frame(_init(), 0.03)  # heard from since: this one is a reboot
    assert [type(e) for e in _frames(session)[1]] == [Closed, Opened] and session.session != first
