"""The head's node watch as logic (a clock of the test's, the in-memory backend): phi suspects a silent node and
lets it go at its next beat; the members follow the node table. (The real head: tests/remote/test_member_backends.py.)"""

from __future__ import annotations

import pytest

from nexus.cluster.remote.members import NodeWatch
from nexus.cluster.state.nodes import Membership


def _watch(clock: list[float], lines: list[str]) -> tuple[NodeWatch, Membership]:
    return NodeWatch("memory", timeout=5.0, heartbeat=0.5, threshold=8.0, clock=lambda: clock[0], log=lines.append), Membership(5.0)


def test_a_silent_node_is_suspected_then_heard_again_and_stays_a_member() -> None:
    clock, lines = [0.0], []
    watch, table = _watch(clock, lines)
    record = table.join("key", "host2", {"CPU": 1.0}, {}, clock[0])
    watch.joined(record)
    for _ in range(20):  # steady beats: never suspected
        clock[0] += 0.5
        watch.heard(record)
        watch.tick([record])
    assert not record.suspected and record.state == "ALIVE"
    clock[0] += 1.5  # three beats missed
    watch.tick([record])
    assert record.suspected and record.state == "SUSPECTED" and record.alive
    assert watch.suspicions == 1 and "is suspected: phi" in lines[-1]
    watch.heard(record)
    assert not record.suspected and "no longer suspected" in lines[-1]
    assert [m.node for m in watch.members()] == [str(record.node_id)]


def test_a_node_the_backend_expired_a_moment_early_joins_it_again_at_its_next_beat() -> None:
    clock, lines = [0.0], []
    watch, table = _watch(clock, lines)
    record = table.join("key", "host2", {}, {}, clock[0])
    watch.joined(record)
    clock[0] += 5.1
    watch.tick([record])  # (the backend expires it: its time to live ran out)
    assert watch.members() == []
    watch.heard(record)
    assert [m.node for m in watch.members()] == [str(record.node_id)]
    watch.gone(record)
    assert watch.members() == [] and record.node_id not in watch.detectors


def test_the_head_s_own_node_is_never_suspected_and_bad_settings_are_refused() -> None:
    clock, lines = [0.0], []
    watch, table = _watch(clock, lines)
    own = table.join("key", "head", {}, {}, clock[0], info={"head": True})
    watch.joined(own)
    clock[0] += 60
    watch.tick([own])
    assert not own.suspected
    with pytest.raises(ValueError, match="positive number"):
        NodeWatch("memory", 5.0, 0.5, 0.0, lambda: 0.0, print)
    with pytest.raises(ValueError, match="etcd://HOST:PORT"):
        NodeWatch("zookeeper://x", 5.0, 0.5, 8.0, lambda: 0.0, print)
