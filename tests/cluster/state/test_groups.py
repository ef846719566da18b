"""Placement groups' pure part: checking bundles, where each strategy puts them, what a reservation offers."""

from __future__ import annotations

import pytest

from nexus.cluster.state.groups import GroupRecord, GroupStatus, check_bundles, group_in, needs_in, never_fits, offers, plan
from nexus.cluster.state.resources import Resources
from nexus.cluster.state.workers import InvalidTransitionError

GID = 0xABC


def nodes(*cpus: float) -> dict[int, dict[str, float]]:
    """Nodes 1, 2, ... with these CPUs free."""
    return {i: {"CPU": float(c)} for i, c in enumerate(cpus, 1)}


ONE = {"CPU": 1.0}


def test_bundles_are_checked_and_zero_amounts_dropped() -> None:
    assert check_bundles([{"CPU": 1, "GPU": 0}, {"disk": 0.5}]) == [{"CPU": 1.0}, {"disk": 0.5}]
    with pytest.raises(ValueError, match="at least one bundle"):
        check_bundles(())
    with pytest.raises(ValueError, match="bundle 0 asks for -0.5 GPU: amounts cannot be negative"):
        check_bundles([{"GPU": -0.5}])


def test_strict_pack_puts_every_bundle_on_one_node_or_none() -> None:
    assert plan([ONE, ONE], "STRICT_PACK", nodes(1, 2)) == ({0: 2, 1: 2}, "")
    chosen, why = plan([ONE, ONE], "STRICT_PACK", nodes(1, 1))
    assert chosen is None and "STRICT_PACK needs {'CPU': 2} free on one node" in why


def test_pack_prefers_one_node_and_else_as_few_as_it_can() -> None:
    assert plan([ONE, ONE], "PACK", nodes(1, 2)) == ({0: 2, 1: 2}, "")
    assert plan([ONE] * 4, "PACK", nodes(1, 3, 1)) == ({0: 2, 1: 2, 2: 2, 3: 1}, ""), "the roomiest node, then one more"


def test_spread_uses_different_nodes_while_there_are_and_then_doubles_up() -> None:
    assert plan([ONE, ONE], "SPREAD", nodes(2, 2)) == ({0: 1, 1: 2}, "")
    chosen, _ = plan([ONE] * 3, "SPREAD", nodes(2, 2))
    assert chosen is not None and sorted(chosen.values()) == [1, 1, 2]
    assert plan([ONE, ONE], "SPREAD", nodes(2, 0)) == ({0: 1, 1: 1}, ""), "best effort: one node when only one has room"


def test_strict_spread_needs_a_node_for_each_bundle_and_finds_a_matching() -> None:
    big = {"CPU": 2.0}
    # greedy in order would put the small bundle on node 2 (the big one's only node): the matching does not
    assert plan([ONE, big], "STRICT_SPREAD", nodes(1, 2)) == ({0: 1, 1: 2}, "")
    chosen, why = plan([ONE] * 3, "STRICT_SPREAD", nodes(4, 4))
    assert chosen is None and "STRICT_SPREAD needs 3 different nodes" in why


def test_a_group_placed_again_keeps_the_bundles_it_has() -> None:
    assert plan([ONE, ONE, ONE], "STRICT_SPREAD", nodes(1, 1, 1, 1), placed={0: 1, 1: 2}) == ({2: 3}, "")
    assert plan([ONE, ONE], "STRICT_PACK", nodes(4, 4), placed={0: 2}) == ({1: 2}, "")
    chosen, why = plan([ONE, ONE], "STRICT_PACK", nodes(4, 0), placed={0: 2})
    assert chosen is None and "node 000002, where its other bundles are" in why


def test_what_no_node_could_ever_hold_is_said() -> None:
    assert never_fits([ONE], "PACK", nodes(1)) is None
    assert "bundle 1 {'CPU': 8} is larger than any node" in (never_fits([ONE, {"CPU": 8}], "PACK", nodes(4, 4)) or "")
    assert "STRICT_PACK needs {'CPU': 5} on one node" in (never_fits([{"CPU": 4}, ONE], "STRICT_PACK", nodes(4, 4)) or "")
    assert "STRICT_SPREAD needs 3 different nodes" in (never_fits([ONE] * 3, "STRICT_SPREAD", nodes(4, 4)) or "")


def test_work_in_a_bundle_holds_the_bundles_names_and_the_groups() -> None:
    needs = needs_in({"CPU": 1.0}, GID, 0)
    assert needs == {
        f"bundle_group_{GID:024x}": 0.001,
        f"bundle_group_0_{GID:024x}": 0.001,
        f"CPU_group_{GID:024x}": 1.0,
        f"CPU_group_0_{GID:024x}": 1.0,
    }
    assert set(needs_in({}, GID, -1)) == {f"bundle_group_{GID:024x}"}
    assert group_in(needs) == GID and group_in({"CPU": 1.0}) == 0 and group_in(None) == 0


def test_a_reservation_withholds_its_resources_and_offers_them_under_its_names() -> None:
    r = Resources(4, {"GPU": 1})
    node = r.local
    bundle = {"CPU": 2.0, "GPU": 1.0}
    r.reserve(node, bundle, offers(GID, 0, bundle))
    assert r.free(node, 4 - r.used["CPU"])["GPU"] == 0.0 and r.used["CPU"] == 2.0
    assert r.fits(needs_in({"CPU": 2.0, "GPU": 1.0}, GID, 0), 0.0, node), "the group's work fits with no CPU free outside it"
    assert not r.fits(needs_in({"CPU": 3.0}, GID, 0), 0.0, node)
    held = needs_in({"CPU": 1.0}, GID, 0)
    r.hold(held, cpu=False, node=node)
    r.unreserve(node, bundle, offers(GID, 0, bundle))
    assert r.used == {"CPU": 0.0, "GPU": 0.0} and set(r.total) == {"CPU", "GPU"}, "its names are gone"
    r.release(held, cpu=False, node=node)  # (work that held them ends later: nothing to give back)
    assert r.used == {"CPU": 0.0, "GPU": 0.0}


def test_a_groups_states_change_as_ray_says() -> None:
    group = GroupRecord(GID, "g", [ONE], "PACK", False, 1)
    group.to(GroupStatus.CREATED)
    group.to(GroupStatus.RESCHEDULING)
    group.to(GroupStatus.REMOVED)
    with pytest.raises(InvalidTransitionError):
        group.to(GroupStatus.CREATED)
