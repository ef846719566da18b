"""Large data messages as parts: split by size without copying, joined back in order, and a broken one dropped alone."""

from __future__ import annotations

import pytest

from nexus.cluster.remote.parts import DATA, LAYOUT, PART, Parts, split


def _receive(parts: Parts, messages: list[list]) -> list:
    """What a receiver makes of ``messages``: the whole message's frames (after the kind)."""
    for m in messages[:-1]:
        (parts.first if m[0] == LAYOUT else parts.add)(m[1:])
    return parts.join(messages[-1][1:])


def _contents(frames: list) -> list[bytes]:
    return [bytes(getattr(f, "buffer", f)) for f in frames]


def test_a_small_message_goes_whole() -> None:
    frames = [DATA, b"envelope", memoryview(b"x" * 100)]
    assert split(frames, limit=1000) == [frames]


def test_a_large_message_goes_in_parts_of_about_the_limit_and_joins_back_in_order() -> None:
    buffers = [memoryview(bytes([i]) * 400) for i in range(10)]
    frames = [DATA, b"envelope", *buffers]
    messages = split(frames, limit=1000)
    assert [m[0] for m in messages] == [LAYOUT, PART, PART, DATA]
    sent = [f for m in messages for f in m[2 if m[0] == LAYOUT else 1 :]]
    assert all(a is b for a, b in zip(sent, frames[1:], strict=True)), "the same frames, not copies"
    parts = Parts()
    assert _receive(parts, messages) == frames[1:], "frames that were not cut arrive as they were sent"
    assert parts.join([b"next"]) == [b"next"], "nothing is left over for the next message"


def test_a_frame_larger_than_a_part_is_cut_into_views_and_put_back_together() -> None:
    big = bytes(range(256)) * 40  # 10,240 bytes
    frames = [DATA, b"envelope", memoryview(big), b"tail"]
    messages = split(frames, limit=1000)
    assert len(messages) == 11 and messages[0][0] == LAYOUT and messages[-1][0] == DATA
    pieces = [f for m in messages for f in m[1:]][2:-1]
    assert all(isinstance(p, memoryview) and p.obj is big for p in pieces), "pieces are views of the buffer"
    assert all(len(m[1:]) <= 3 for m in messages)
    joined = _receive(Parts(), messages)
    assert _contents(joined) == [b"envelope", big, b"tail"]
    assert len(joined[1]) == len(big) and joined[1].bytes == big, "read as a ZeroMQ frame is"


def test_parts_that_end_on_the_limit_still_end_with_a_data_message() -> None:
    frames = [DATA, memoryview(b"a" * 1000), memoryview(b"b" * 1000)]
    messages = split(frames, limit=1000)
    assert [m[0] for m in messages] == [LAYOUT, DATA]
    assert [len(m) for m in messages] == [3, 2]
    assert _contents(_receive(Parts(), messages)) == [b"a" * 1000, b"b" * 1000]


def test_a_lost_part_drops_its_message_and_only_it() -> None:
    big = b"z" * 5000
    messages = split([DATA, b"envelope", big], limit=1000)
    parts = Parts()
    with pytest.raises(ValueError, match="frames its layout names"):
        _receive(parts, messages[:2] + messages[3:])  # (a send that failed half way)
    assert _contents(_receive(parts, messages)) == [b"envelope", big], "the next message is whole"


def test_a_message_cut_short_by_the_next_one_is_dropped_and_the_next_one_taken() -> None:
    messages = split([DATA, b"envelope", b"y" * 5000], limit=1000)
    parts = Parts()
    parts.first(messages[0][1:])
    parts.add(messages[1][1:])
    with pytest.raises(ValueError, match="without its last part"):
        parts.first(messages[0][1:])
    for m in messages[1:-1]:
        parts.add(m[1:])
    assert _contents(parts.join(messages[-1][1:])) == [b"envelope", b"y" * 5000]


@pytest.mark.parametrize(
    "layout",
    [b"\x01\x02\x03", b"", (5).to_bytes(8, "little"), (1).to_bytes(8, "little") * 2],
    ids=["not-sizes", "empty", "one-frame", "pieces-larger-than-named"],
)
def test_a_part_that_does_not_fit_its_layout_drops_the_message_quietly_to_its_end(layout) -> None:
    parts = Parts()
    with pytest.raises(ValueError):
        parts.first([layout, b"abcd", b"efgh"])
    parts.add([b"more"])  # the rest of that message is not read, and not an error again
    with pytest.raises(ValueError, match="dropped"):
        parts.join([b"last"])
    assert parts.join([b"next"]) == [b"next"]
    with pytest.raises(ValueError, match="no message"):
        parts.add([b"stray"])


def test_a_message_of_one_large_frame_goes_in_pieces_too() -> None:
    """An envelope whose pickle is large (a list of millions of ints has no out-of-band buffer) and nothing else."""
    envelope = bytes(range(256)) * 20
    messages = split([DATA, envelope], limit=1000)
    assert len(messages) == 6 and messages[0][0] == LAYOUT and messages[-1][0] == DATA
    assert _contents(_receive(Parts(), messages)) == [envelope]


def test_a_layout_that_claims_more_than_this_machines_memory_is_refused_before_anything_is_allocated() -> None:
    from array import array

    parts = Parts()
    with pytest.raises(ValueError, match="more than this machine's memory"):
        parts.first([array("Q", [1 << 60, 4]).tobytes(), b"abcd"])
    with pytest.raises(ValueError, match="dropped"):
        parts.join([b"its last part"])
    assert parts.join([b"next"]) == [b"next"]
