"""Membership in a real etcd server (Debian's etcd-server, started here on loopback ports of its own).

Skipped where etcd is missing, unless NEXUS_REQUIRE_ETCD=1 (CI sets it: there it must run).
"""

from __future__ import annotations

import time

import pytest

from nexus.cluster.services.etcd import EtcdMembership  # (etcd3gw: installed with the etcd extra)
from nexus.cluster.services.membership import Member, MemberEvent
from tests.conftest import wait_until
from tests.etcd_server import Etcd  # (it skips this module where etcd is missing)


def test_members_join_and_leave_and_a_silent_one_expires_and_every_backend_hears_it(etcd: Etcd) -> None:
    head_a, head_b = EtcdMembership(port=etcd.client), EtcdMembership(port=etcd.client)
    heard: list[MemberEvent] = []
    stop = head_b.watch(heard.append)
    time.sleep(0.2)  # (the watch is in place)
    head_a.join(Member("n1", "10.0.0.1:7000", {"zone": "a"}), ttl=2)
    head_a.join(Member("n2"), ttl=2)
    assert {m.node for m in head_b.members()} == {"n1", "n2"}
    assert Member("n1", "10.0.0.1:7000", {"zone": "a"}) in head_b.members()
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:  # n1 keeps renewing, n2 falls silent
        head_a.renew("n1")
        time.sleep(0.5)
    assert {m.node for m in head_b.members()} == {"n1"}
    head_a.leave("n1")
    wait_until(lambda: len(heard) >= 4)
    assert [(e.kind, e.member.node) for e in heard] == [("joined", "n1"), ("joined", "n2"), ("left", "n2"), ("left", "n1")]
    head_a.join(Member("n3"), ttl=1)
    time.sleep(3)  # (its lease runs out)
    with pytest.raises(LookupError, match="must join again"):
        head_a.renew("n3")
    stop()
    head_a.close()
    head_b.close()


def test_etcd_gone_is_a_clear_error_and_a_lease_that_outlived_it_renews_again(etcd: Etcd) -> None:
    backend = EtcdMembership(port=etcd.client, timeout=2.0)
    backend.join(Member("n1"), ttl=10)
    etcd.stop()
    with pytest.raises(ConnectionError, match=f"etcd at 127.0.0.1:{etcd.client} cannot be reached"):
        backend.renew("n1")
    with pytest.raises(ConnectionError, match="cannot be reached"):
        backend.members()
    etcd.start()
    backend.renew("n1")  # (the lease outlived the restart: etcd keeps leases with its data)
    assert [m.node for m in backend.members()] == ["n1"]
    backend.close()
