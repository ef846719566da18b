"""The reliable and best-effort streams as state machines, over a simulated line that loses, repeats and reorders."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.cluster.bridge.streams import ACKNACK, BestEffortReceiver, ReliableReceiver, ReliableSender, StreamFullError, newer


def test_sequence_order_wraps() -> None:
    assert newer(1, 0) and newer(0, 0xFFFF) and newer(5, 0xFFF0)
    assert not newer(0, 1) and not newer(3, 3) and not newer(0xFFF0, 5)


def _run(seed: int, messages: int, loss: float, window: int, start_seq: int = 0) -> tuple[list[tuple[int, bytes]], ReliableSender]:
    """Send ``messages`` over a line that drops, repeats and reorders frames both ways; what the receiver delivered."""
    rng = random.Random(seed)
    delivered: list[tuple[int, bytes]] = []
    sender = ReliableSender(window=window, rto=0.05, queue_max=messages)
    sender.next_seq = start_seq
    receiver = ReliableReceiver(lambda mid, payload: delivered.append((mid, payload)))
    receiver.expected = start_seq
    for i in range(messages):
        sender.send(i, f"message {i}".encode())
    to_device: list[tuple[float, tuple[int, int, bytes]]] = []
    to_host: list[tuple[float, bytes]] = []
    now = 0.0

    def line(queue: list, item: object) -> None:
        if rng.random() < loss:
            return  # lost
        for _ in range(2 if rng.random() < 0.05 else 1):  # sometimes twice
            queue.append((now + rng.uniform(0.001, 0.02), item))  # each with its own delay: reordered

    for _ in range(200_000):
        if sender.idle:
            break
        now += 0.001
        for frame in sender.poll(now):
            line(to_device, frame)
        for at, frame in [x for x in to_device if x[0] <= now]:
            to_device.remove((at, frame))
            receiver.on_data(*frame)
            line(to_host, receiver.acknack())
        for at, acknack in [x for x in to_host if x[0] <= now]:
            to_host.remove((at, acknack))
            for frame in sender.on_acknack(acknack, now):
                line(to_device, frame)
    return delivered, sender


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.0, 0.1, 0.3]), st.sampled_from([1, 4, 8, 16]))
def test_every_message_arrives_once_and_in_order_whatever_the_line_does(seed: int, loss: float, window: int) -> None:
    delivered, sender = _run(seed, 120, loss, window)
    assert delivered == [(i, f"message {i}".encode()) for i in range(120)]
    assert sender.idle
    if loss:
        assert sender.retransmitted > 0


def test_sequence_numbers_wrap_in_the_middle_of_a_stream() -> None:
    delivered, _ = _run(7, 100, 0.2, 8, start_seq=0xFFF0)
    assert [mid for mid, _ in delivered] == list(range(100))


def test_the_acknack_says_what_is_missing_after_the_first_gap() -> None:
    got: list[int] = []
    receiver = ReliableReceiver(lambda mid, _payload: got.append(mid), window=8)
    assert ACKNACK.unpack(receiver.acknack()) == (0, 0)
    receiver.on_data(0, 100, b"")
    receiver.on_data(2, 102, b"")
    receiver.on_data(4, 104, b"")
    assert got == [100]
    assert ACKNACK.unpack(receiver.acknack()) == (1, 0b0101)  # 1 and 3 missing
    receiver.on_data(2, 102, b"")
    receiver.on_data(0, 100, b"")
    assert receiver.duplicates == 2
    receiver.on_data(9, 109, b"")
    assert receiver.out_of_window == 1, "past its window: dropped, sent again later"
    receiver.on_data(1, 101, b"")
    receiver.on_data(3, 103, b"")
    assert got == [100, 101, 102, 103, 104]


def test_the_sender_keeps_its_window_and_says_when_its_queue_is_full() -> None:
    sender = ReliableSender(window=2, rto=1.0, queue_max=3)
    for i in range(3):
        sender.send(i, b"")
    with pytest.raises(StreamFullError, match="3 messages already wait"):
        sender.send(3, b"")
    assert [seq for seq, _, _ in sender.poll(0.0)] == [0, 1], "two in flight, no more"
    assert sender.poll(0.5) == []
    assert [seq for seq, _, _ in sender.on_acknack(ACKNACK.pack(1, 0), 0.6)] == []
    assert [seq for seq, _, _ in sender.poll(0.6)] == [2]
    assert [seq for seq, _, _ in sender.poll(1.7)] == [1, 2], "unanswered for the rto: sent again"
    with pytest.raises(ValueError, match="ACKNACK payload is 4 bytes"):
        sender.on_acknack(b"\x00", 1.8)
    assert sender.reset() == [(1, b""), (2, b"")] and sender.next_seq == 0 and sender.idle


def test_best_effort_takes_the_latest_and_drops_what_is_older() -> None:
    receiver = BestEffortReceiver()
    assert [receiver.take(s) for s in (5, 6, 4, 6, 9, 0xFFFF)] == [True, True, False, False, True, False]
    assert receiver.stale == 3
    receiver.reset()
    assert receiver.take(0)
