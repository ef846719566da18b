"""SyncRing: a fixed-capacity FIFO that rejects pushes when full."""

from __future__ import annotations

import collections
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.core.ring import SyncRing


def test_push_and_pop_are_fifo() -> None:
    ring: SyncRing[int] = SyncRing(4)
    for i in range(4):
        assert ring.push(i) is True
    assert [ring.pop() for _ in range(4)] == [0, 1, 2, 3]
    assert len(ring) == 0


def test_len_bool_and_is_full_follow_the_contents() -> None:
    ring: SyncRing[str] = SyncRing(2)
    assert len(ring) == 0
    assert not ring
    assert not ring.is_full()
    ring.push("a")
    assert len(ring) == 1
    assert ring
    assert not ring.is_full()
    ring.push("b")
    assert len(ring) == 2
    assert ring.is_full()
    ring.pop()
    assert not ring.is_full()
    ring.pop()
    assert not ring


def test_a_ring_holding_falsy_items_is_still_truthy() -> None:
    ring: SyncRing[Any] = SyncRing(3)
    ring.push(None)
    ring.push(0)
    assert ring
    assert len(ring) == 2
    assert ring.pop() is None
    assert ring.pop() == 0


def test_push_returns_false_when_full_and_stores_nothing() -> None:
    ring: SyncRing[int] = SyncRing(3)
    for i in range(3):
        assert ring.push(i)
    assert ring.push(99) is False
    assert ring.push_front(98) is False
    assert len(ring) == 3
    assert list(ring) == [0, 1, 2]
    assert ring.pop() == 0
    assert ring.push(3) is True
    assert list(ring) == [1, 2, 3]


def test_push_front_puts_an_item_at_the_head() -> None:
    ring: SyncRing[str] = SyncRing(4)
    ring.push("b")
    ring.push("c")
    assert ring.push_front("a") is True
    assert ring.peek() == "a"
    assert list(ring) == ["a", "b", "c"]
    assert ring.push_front("z") is True
    assert ring.is_full()
    assert [ring.pop() for _ in range(4)] == ["z", "a", "b", "c"]


def test_push_front_into_an_empty_ring_and_wrapping_backwards() -> None:
    ring: SyncRing[int] = SyncRing(3)
    # head starts at slot 0, so the first push_front wraps to the last slot
    assert ring.push_front(2)
    assert ring.push_front(1)
    assert ring.push(3)
    assert list(ring) == [1, 2, 3]
    assert [ring.pop() for _ in range(3)] == [1, 2, 3]


def test_pop_and_peek_on_empty_raise_index_error() -> None:
    ring: SyncRing[int] = SyncRing(2)
    with pytest.raises(IndexError):
        ring.pop()
    with pytest.raises(IndexError):
        ring.peek()
    ring.push(1)
    ring.pop()
    with pytest.raises(IndexError):
        ring.pop()
    with pytest.raises(IndexError):
        ring.peek()
    assert len(ring) == 0


def test_peek_returns_the_head_without_removing_it() -> None:
    ring: SyncRing[str] = SyncRing(3)
    ring.push("x")
    ring.push("y")
    assert ring.peek() == "x"
    assert ring.peek() == "x"
    assert len(ring) == 2
    assert ring.pop() == "x"
    assert ring.peek() == "y"


def test_wrap_around_over_many_cycles_keeps_fifo_order() -> None:
    ring: SyncRing[int] = SyncRing(5)
    next_in, next_out = 0, 0
    for cycle in range(1000):
        # alternate between pushing a few and popping a few so the head and
        # tail go round the buffer at varying offsets
        for _ in range(cycle % 5 + 1):
            if ring.push(next_in):
                next_in += 1
        for _ in range((cycle * 3) % 5 + 1):
            if ring:
                assert ring.pop() == next_out
                next_out += 1
        assert len(ring) == next_in - next_out
        assert list(ring) == list(range(next_out, next_in))
    assert next_in > 1000, "the test must actually go round the buffer many times"


def test_pop_drops_the_reference_to_the_item() -> None:
    import gc
    import weakref

    class Item:
        pass

    ring: SyncRing[Item] = SyncRing(2)
    item = Item()
    ref = weakref.ref(item)
    ring.push(item)
    del item
    ring.pop()
    gc.collect()
    assert ref() is None, "a popped item must not stay alive in the ring's storage"


def test_clear_after_wrap_around_returns_items_oldest_first() -> None:
    ring: SyncRing[int] = SyncRing(4)
    for i in range(4):
        ring.push(i)
    assert ring.pop() == 0
    assert ring.pop() == 1
    ring.push(4)
    ring.push(5)  # the tail has wrapped past the end of the storage
    assert ring.clear() == [2, 3, 4, 5]
    assert len(ring) == 0
    assert not ring
    assert list(ring) == []
    with pytest.raises(IndexError):
        ring.pop()
    # the ring is fully usable again at its full capacity
    for i in range(4):
        assert ring.push(10 + i)
    assert not ring.push(99)
    assert list(ring) == [10, 11, 12, 13]


def test_clear_on_an_empty_ring_returns_an_empty_list() -> None:
    ring: SyncRing[int] = SyncRing(1)
    assert ring.clear() == []


def test_iteration_is_oldest_first_and_does_not_consume() -> None:
    ring: SyncRing[str] = SyncRing(3)
    ring.push("b")
    ring.push("c")
    ring.push_front("a")
    assert list(ring) == ["a", "b", "c"]
    assert list(ring) == ["a", "b", "c"]
    assert len(ring) == 3


def test_capacity_is_fixed_and_reported() -> None:
    ring: SyncRing[int] = SyncRing(7)
    assert ring.capacity == 7
    for i in range(7):
        ring.push(i)
    assert not ring.push(7)
    assert ring.capacity == 7


def test_capacity_one() -> None:
    ring: SyncRing[str] = SyncRing(1)
    assert ring.push("a")
    assert not ring.push("b")
    assert not ring.push_front("b")
    assert ring.pop() == "a"
    assert ring.push_front("c")
    assert ring.peek() == "c"


@pytest.mark.parametrize("capacity", [0, -1, -100, 2.0, 2.5, "3", None, True])
def test_capacity_must_be_a_positive_int(capacity: Any) -> None:
    with pytest.raises(ValueError, match="positive int"):
        SyncRing(capacity)


def test_repr_shows_size_and_capacity() -> None:
    ring: SyncRing[int] = SyncRing(3)
    ring.push(1)
    assert repr(ring) == "SyncRing(size=1, capacity=3)"


# ---- property test against a deque model --------------------------------------------


class _Model:
    """collections.deque with "reject when full" instead of deque(maxlen=...)'s "drop the other end"."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: collections.deque[int] = collections.deque()

    def push(self, item: int) -> bool:
        if len(self.items) >= self.capacity:
            return False
        self.items.append(item)
        return True

    def push_front(self, item: int) -> bool:
        if len(self.items) >= self.capacity:
            return False
        self.items.appendleft(item)
        return True

    def pop(self) -> int:
        return self.items.popleft()  # IndexError when empty, like SyncRing

    def peek(self) -> int:
        if not self.items:
            raise IndexError("empty")
        return self.items[0]

    def clear(self) -> list[int]:
        items = list(self.items)
        self.items.clear()
        return items


_operations = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers()),
        st.tuples(st.just("push_front"), st.integers()),
        st.tuples(st.just("pop"), st.none()),
        st.tuples(st.just("peek"), st.none()),
        st.tuples(st.just("clear"), st.none()),
    ),
    max_size=200,
)


def _apply(target: Any, name: str, arg: int | None) -> tuple[str, Any]:
    method = getattr(target, name)
    try:
        result = method(arg) if arg is not None else method()
    except IndexError:
        return ("IndexError", None)
    return ("ok", result)


@settings(max_examples=300, deadline=None)
@given(capacity=st.integers(min_value=1, max_value=8), ops=_operations)
def test_sync_ring_behaves_like_a_bounded_deque(capacity: int, ops: list[tuple[str, int | None]]) -> None:
    ring: SyncRing[int] = SyncRing(capacity)
    model = _Model(capacity)
    for name, arg in ops:
        assert _apply(ring, name, arg) == _apply(model, name, arg), (name, arg)
        assert list(ring) == list(model.items)
        assert len(ring) == len(model.items)
        assert bool(ring) == bool(model.items)
        assert ring.is_full() == (len(model.items) == capacity)
        assert ring.capacity == capacity
