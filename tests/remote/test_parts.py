"""Large data messages as parts: split by size without copying, joined back in order."""

from __future__ import annotations

from nexus.cluster.remote.parts import DATA, PART, Parts, split


def test_a_small_message_goes_whole() -> None:
    frames = [DATA, b"envelope", memoryview(b"x" * 100)]
    assert split(frames, limit=1000) == [frames]


def test_a_large_message_goes_in_parts_of_about_the_limit_and_joins_back_in_order() -> None:
    buffers = [memoryview(bytes([i]) * 400) for i in range(10)]
    frames = [DATA, b"envelope", *buffers]
    messages = split(frames, limit=1000)
    assert [m[0] for m in messages] == [PART, PART, PART, DATA]
    assert all(a is b for a, b in zip([f for m in messages for f in m[1:]], frames[1:], strict=True)), "the same frames, not copies"
    parts = Parts()
    for m in messages[:-1]:
        parts.add(m[1:])
    assert parts.join(messages[-1][1:]) == frames[1:]
    assert parts.join([b"next"]) == [b"next"], "nothing is left over for the next message"


def test_parts_that_end_on_the_limit_still_end_with_a_data_message() -> None:
    frames = [DATA, memoryview(b"a" * 1000), memoryview(b"b" * 1000)]
    messages = split(frames, limit=1000)
    assert [m[0] for m in messages] == [PART, DATA]
    assert [len(m) for m in messages] == [2, 2]
