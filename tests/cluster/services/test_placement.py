"""Placement strategies: how evenly identities spread, how few move when members change, and the load-based ones."""

from __future__ import annotations

import statistics
from collections import Counter

import pytest

from nexus.cluster.services.placement import (
    ConsistentHash,
    Pack,
    PlacementStrategy,
    Rendezvous,
    Spread,
    StaticPartition,
    available_strategies,
    load_strategy,
    stable_hash,
)

IDENTITIES = [f"user-{i}" for i in range(10_000)]
NODES = [f"node-{i:02d}" for i in range(10)]


def _owners(strategy: PlacementStrategy, nodes: list[str]) -> dict[str, str]:
    strategy.set_nodes(nodes)
    return {identity: strategy.owner(identity) for identity in IDENTITIES}


@pytest.mark.parametrize(
    ("make", "spread"), [(lambda: ConsistentHash(), 0.25), (lambda: Rendezvous(), 0.1), (lambda: StaticPartition(partitions=1000), 0.12)]
)
def test_hashing_strategies_spread_identities_evenly_and_agree_everywhere(make, spread) -> None:
    owners = _owners(make(), NODES)
    counts = Counter(owners.values())
    assert set(counts) == set(NODES)
    mean = statistics.mean(counts.values())
    assert max(abs(c - mean) for c in counts.values()) / mean < spread, counts
    assert _owners(make(), list(reversed(NODES))) == owners, "the same members in another order: the same owners"


@pytest.mark.parametrize("make", [lambda: ConsistentHash(), lambda: Rendezvous(), lambda: StaticPartition(partitions=1000)])
def test_a_member_joining_moves_about_one_in_n_and_one_leaving_moves_only_its_own(make) -> None:
    strategy = make()
    before = _owners(strategy, NODES)
    joined = _owners(strategy, [*NODES, "node-10"])
    moved = [i for i in IDENTITIES if joined[i] != before[i]]
    assert 0.06 < len(moved) / len(IDENTITIES) < 0.13, len(moved)  # (1/11 = 0.091)
    assert all(joined[i] == "node-10" for i in moved), "only to the new member"
    strategy = make()
    _owners(strategy, NODES)
    left = _owners(strategy, [n for n in NODES if n != "node-03"])
    assert [i for i in IDENTITIES if left[i] != before[i]] == [i for i in IDENTITIES if before[i] == "node-03"]


def test_a_static_table_is_kept_as_given_and_a_leaving_nodes_partitions_go_to_the_others() -> None:
    strategy = StaticPartition(partitions=4, table={0: "a", 1: "a", 2: "b", 3: "c"})
    strategy.set_nodes(["a", "b", "c"])
    assert strategy.table == {0: "a", 1: "a", 2: "b", 3: "c"}
    strategy.set_nodes(["a", "b"])
    assert strategy.table[3] == "b" and strategy.table[0] == strategy.table[1] == "a"
    with pytest.raises(ValueError, match="partitions 0..3"):
        StaticPartition(partitions=4, table={7: "a"})


def test_spread_takes_the_emptiest_node_and_pack_fills_one_before_the_next() -> None:
    spread, pack = Spread(), Pack(capacity=2)
    for strategy in (spread, pack):
        strategy.set_nodes(["a", "b", "c"])
    placed = []
    for identity in ("x1", "x2", "x3", "x4"):
        node = spread.owner(identity)
        spread.placed(identity, node)
        placed.append(node)
    assert Counter(placed) == {"a": 2, "b": 1, "c": 1}
    packed = []
    for identity in ("y1", "y2", "y3"):
        node = pack.owner(identity)
        pack.placed(identity, node)
        packed.append(node)
    assert packed == ["c", "c", "b"], "the fullest node with room (ties: by name), then the next"
    pack.removed("y1", "c")
    assert pack.owner("y4") == "c" and pack.load == {"a": 0, "b": 1, "c": 1}


def test_no_members_is_a_clear_error_and_strategies_are_found_by_name() -> None:
    for name in ("consistent_hash", "rendezvous", "static", "spread", "pack"):
        strategy = load_strategy(name)
        with pytest.raises(LookupError, match="no member nodes"):
            strategy.owner("x")
        assert name in available_strategies()
    assert load_strategy("consistent_hash", vnodes=8).vnodes == 8
    with pytest.raises(ValueError, match="unknown placement strategy 'hrw'; there are: consistent_hash"):
        load_strategy("hrw")
    with pytest.raises(TypeError, match="placement strategy 'rendezvous'"):
        load_strategy("rendezvous", vnodes=8)


def test_the_hash_is_the_same_everywhere() -> None:
    assert stable_hash("user-42") == 0x6FA0CA4D7BE6EFA6  # (BLAKE2b-64 of the name: not Python's salted hash)
    assert stable_hash("a", "bc") != stable_hash("ab", "c")


def test_static_partitions_stay_balanced_within_one_as_members_come_and_go() -> None:
    strategy = StaticPartition(partitions=256)
    strategy.set_nodes(NODES)
    before = dict(strategy.table)
    strategy.set_nodes([*NODES, "node-10"])
    counts = Counter(strategy.table.values())
    assert set(counts.values()) <= {23, 24} and counts["node-10"] >= 23, counts
    moved = [p for p in before if strategy.table[p] != before[p]]
    assert all(strategy.table[p] == "node-10" for p in moved) and len(moved) == counts["node-10"]
    strategy.set_nodes(NODES[:5])
    assert set(Counter(strategy.table.values()).values()) <= {51, 52}
