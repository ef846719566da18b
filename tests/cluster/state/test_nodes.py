"""Membership: nodes join under numbers of their own, are declared dead when silent, and stay dead (fencing)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.cluster.state.nodes import Membership, NodeStatus


def test_each_join_gets_a_new_number_and_the_alive_nodes_resources_add_up() -> None:
    m = Membership(timeout=5.0)
    a = m.join("key-a", "host-a", {"CPU": 2.0}, {"zone": "x"}, now=0.0)
    b = m.join("key-b", "host-b", {"CPU": 4.0, "GPU": 1.0}, {}, now=1.0)
    assert (a.node_id, b.node_id) == (1, 2)
    assert m.total_resources() == {"CPU": 6.0, "GPU": 1.0}
    assert [r.node_id for r in m.alive()] == [1, 2]


def test_a_silent_node_is_declared_dead_after_the_timeout_and_not_before() -> None:
    m = Membership(timeout=5.0)
    a = m.join("key-a", "host-a", {"CPU": 2.0}, {}, now=0.0)
    assert m.heard(a.node_id, "key-a", now=4.0) is a
    assert m.expire(now=9.0) == []  # heard at 4: 5 s of silence is not more than the timeout
    dead = m.expire(now=9.5)
    assert dead == [a] and a.status is NodeStatus.DEAD
    assert "not heard from for 5.5 s (timeout 5 s)" in a.why
    assert m.expire(now=100.0) == [], "declared dead once"
    assert m.total_resources() == {}


def test_a_dead_node_that_comes_back_is_fenced_and_must_join_as_a_new_node() -> None:
    m = Membership(timeout=1.0)
    old = m.join("key-a", "host-a", {"CPU": 1.0}, {}, now=0.0)
    m.expire(now=2.0)
    assert m.heard(old.node_id, "key-a", now=2.5) is None, "its heartbeat after death is not taken"
    new = m.join("key-a", "host-a", {"CPU": 1.0}, {}, now=3.0)
    assert new.node_id != old.node_id and new.alive and not old.alive


def test_a_heartbeat_under_another_nodes_number_is_refused() -> None:
    m = Membership(timeout=1.0)
    a = m.join("key-a", "host-a", {}, {}, now=0.0)
    assert m.heard(a.node_id, "key-b", now=0.5) is None
    assert m.heard(99, "key-a", now=0.5) is None
    assert m.leave(a.node_id, "key-b") is None and a.alive


def test_a_node_that_leaves_is_dead_at_once() -> None:
    m = Membership(timeout=60.0)
    a = m.join("key-a", "host-a", {"CPU": 1.0}, {}, now=0.0)
    assert m.leave(a.node_id, "key-a") is a
    assert a.status is NodeStatus.DEAD and a.why == "it left"


@pytest.mark.parametrize("resources", [{"CPU": -1}, {"CPU": "two"}, {"GPU": True}])
def test_resources_that_are_not_amounts_are_refused(resources: dict) -> None:
    with pytest.raises(ValueError, match="non-negative numbers"):
        Membership(timeout=1.0).join("k", "h", resources, {}, now=0.0)


def test_the_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive number of seconds"):
        Membership(timeout=0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["join", "beat", "tick", "leave"]), st.integers(0, 3), st.floats(0, 3)), max_size=40))
def test_numbers_are_never_reused_and_the_dead_stay_dead(ops: list[tuple[str, int, float]]) -> None:
    m = Membership(timeout=2.0)
    now = 0.0
    ever_dead: set[int] = set()
    for op, who, dt in ops:
        now += dt
        key = f"key-{who}"
        if op == "join":
            m.join(key, "h", {"CPU": 1.0}, {}, now)
        elif op == "beat":
            for r in list(m):
                m.heard(r.node_id, key, now)
        elif op == "leave":
            for r in list(m):
                m.leave(r.node_id, key)
        else:
            m.expire(now)
        for r in m:
            if r.node_id in ever_dead:
                assert not r.alive
            if not r.alive:
                ever_dead.add(r.node_id)
            else:
                assert now - r.last_heard <= 2.0 or op != "tick"
    ids = [r.node_id for r in m]
    assert len(ids) == len(set(ids))
