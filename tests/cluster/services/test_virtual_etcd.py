"""Virtual actors claimed in a real etcd (the cluster's membership there): one claim per activation, let go on
passivation; with etcd killed mid-run, the activations made go on, a new one waits for etcd or fails clearly,
and none is made twice."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

import nexus
from nexus.cluster.services.etcd import EtcdClaims
from tests.conftest import wait_until
from tests.etcd_server import Etcd  # (it skips this module where etcd is missing)

KIND = "tests.cluster.services.test_virtual_etcd.Counter"


@pytest.fixture
def cluster(etcd: Etcd) -> Iterator[Etcd]:
    nexus.init(num_cpus=2, _system_config={"membership": f"etcd://127.0.0.1:{etcd.client}"})
    try:
        yield etcd
    finally:
        nexus.shutdown()


@nexus.remote
class Counter:
    virtual_idle = 60.0

    def __init__(self) -> None:
        self.n = 0

    def incr(self) -> int:
        self.n += 1
        return self.n


@nexus.remote
def incr_from_a_task(counter: Any) -> int:
    return nexus.get(counter.incr.remote(), timeout=30)


def _claims(etcd: Etcd) -> dict[str, str]:
    reader = EtcdClaims(port=etcd.client)
    try:
        return reader.claims()
    finally:
        reader.close()


def _alive(identity: str) -> int:
    return sum(1 for a in nexus.state.list_actors() if a.name == f"virtual:{KIND}/{identity}" and a.state == "alive")


def test_each_activation_is_claimed_in_etcd_and_its_claim_goes_with_it(cluster: Etcd) -> None:
    counter = Counter.virtual("a")
    assert nexus.get(counter.incr.remote(), timeout=30) == 1
    claims = _claims(cluster)
    assert list(claims) == [f"{KIND}/a"]
    directory = nexus.get_actor("nexus:directory")
    (entry,) = nexus.get(directory.listing.remote(), timeout=30)
    assert entry["claimed"]
    assert nexus.get(directory.passivate.remote(KIND, "a"), timeout=30) is True
    assert _claims(cluster) == {}
    assert nexus.get(counter.incr.remote(), timeout=30) == 1, "activated again, claimed again"
    assert list(_claims(cluster)) == [f"{KIND}/a"]


def test_with_etcd_gone_activations_go_on_a_new_one_fails_clearly_or_waits_for_etcd_and_none_is_made_twice(cluster: Etcd) -> None:
    b, c = Counter.virtual("b"), Counter.virtual("c")
    assert nexus.get([b.incr.remote(), c.incr.remote()], timeout=30) == [1, 1]
    cluster.stop()
    assert nexus.get(b.incr.remote(), timeout=30) == 2, "under its lease"
    assert nexus.get(incr_from_a_task.remote(c), timeout=30) == 2, "from another process: through the directory"
    back = threading.Timer(2.0, cluster.start)
    back.start()
    try:
        assert nexus.get(Counter.virtual("e").incr.remote(), timeout=60) == 1, "the first of an outage waited for etcd"
    finally:
        back.join()
    assert nexus.get([b.incr.remote(), c.incr.remote()], timeout=30) == [3, 3]
    cluster.stop()
    with pytest.raises(Exception, match=r"cannot activate .*/d: claim: etcd at 127.0.0.1:\d+ cannot be reached"):
        nexus.get(Counter.virtual("d").incr.remote(), timeout=60)
    # Once that wait ran out, first calls fail at once for a while (not each after a wait of its own)
    firsts = [Counter.virtual(f"x{i}").incr.remote() for i in range(6)]
    failed_at_once, _ = nexus.wait(firsts, num_returns=6, timeout=8)
    assert len(failed_at_once) == 6, "none waited"
    for ref in firsts:
        with pytest.raises(Exception, match=r"cannot activate .*/x\d: claim: etcd .* cannot be reached .*\(no answer for \d+ s\)"):
            nexus.get(ref, timeout=60)
    assert nexus.get(b.incr.remote(), timeout=30) == 4, "what was made goes on"
    cluster.start()
    assert [_alive(i) for i in "bcde"] == [1, 1, 0, 1] and _alive("x0") == 0
    counts = nexus.get(nexus.get_actor("nexus:directory").counts.remote(), timeout=30)
    assert counts["activations"] == 3 and counts["active"] == 3
    wait_until(lambda: set(_claims(cluster)) == {f"{KIND}/b", f"{KIND}/c", f"{KIND}/e"}, timeout=30)
