"""Membership backends: the in-memory one with a clock the test holds (the etcd one: test_etcd.py)."""

from __future__ import annotations

import pytest

from nexus.cluster.services.membership import InMemoryMembership, Member, MemberEvent, member_from


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_members_join_renew_leave_and_the_silent_one_is_suspected_then_expired() -> None:
    clock = Clock()
    membership = InMemoryMembership(clock, threshold=8.0)
    events: list[MemberEvent] = []
    stop = membership.watch(events.append)
    membership.join(Member("n1", "10.0.0.1:7000", {"zone": "a"}), ttl=3.0)
    membership.join(Member("n2"), ttl=3.0)
    for _ in range(20):  # both beat every second
        clock.now += 1.0
        membership.renew("n1")
        membership.renew("n2")
        membership.tick()
    assert [e.kind for e in events] == ["joined", "joined"]
    assert {m.node for m in membership.members()} == {"n1", "n2"}
    for _ in range(3):  # n2 falls silent
        clock.now += 1.0
        membership.renew("n1")
        membership.tick()
    assert [(e.kind, e.member.node) for e in events[2:]] == [("suspected", "n2")], "suspected before it expires"
    clock.now += 1.0
    membership.renew("n1")
    membership.tick()
    assert (events[-1].kind, events[-1].member.node) == ("expired", "n2")
    with pytest.raises(LookupError, match="must join again"):
        membership.renew("n2")
    membership.leave("n1")
    assert events[-1] == MemberEvent("left", Member("n1", "10.0.0.1:7000", {"zone": "a"})) and membership.members() == []
    stop()
    membership.join(Member("n3"), ttl=3.0)
    assert events[-1].kind == "left", "a watcher that stopped hears nothing more"


def test_a_suspected_member_that_beats_again_recovers_and_a_failing_watcher_harms_no_one() -> None:
    clock = Clock()
    membership = InMemoryMembership(clock, threshold=3.0)
    events: list[str] = []
    membership.watch(lambda e: 1 / 0)
    membership.watch(lambda e: events.append(e.kind))
    membership.join(Member("n1"), ttl=10.0)
    for _ in range(10):
        clock.now += 1.0
        membership.renew("n1")
    clock.now += 7.0  # (within its time to live of 10 s)
    membership.tick()
    assert membership.phi("n1") >= 3.0 and events == ["joined", "suspected"]
    membership.renew("n1")
    assert events == ["joined", "suspected", "recovered"]
    with pytest.raises(ValueError, match="positive number of seconds"):
        membership.join(Member("n2"), ttl=0)


def test_a_stored_member_record_is_checked() -> None:
    assert member_from({"node": "n1", "address": "a:1", "labels": {"zone": 1}}) == Member("n1", "a:1", {"zone": "1"})
    with pytest.raises(ValueError, match="not a member record"):
        member_from({"node": 5})
