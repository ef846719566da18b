"""Each placement strategy end to end: virtual actors activated on a real cluster of three nodes (a head started with
``nexus start --head`` and two nodes, a driver attached) go where the class's ``virtual_placement`` says."""

from __future__ import annotations

import os
from typing import Any

import pytest

import nexus
from nexus.cluster.services.placement import load_strategy
from tests.conftest import wait_until
from tests.remote.test_membership import Home


@pytest.fixture
def cluster(home: Home, monkeypatch: pytest.MonkeyPatch) -> Any:
    home.start_head("--node-timeout", "30", "--num-cpus", "1")
    home.start_node("--num-cpus", "1")
    home.start_node("--num-cpus", "1")
    monkeypatch.setenv("NEXUS_HOME", str(home.path))
    nexus.init(address="auto")
    try:
        wait_until(lambda: nexus.cluster_resources().get("CPU") == 3.0, timeout=60)
        yield
    finally:
        nexus.shutdown()


def _kind(strategy: str) -> Any:
    """A class of its own for ``strategy`` (its own kind: the directory places each kind by its own strategy)."""

    def pid(self: Any) -> int:
        return os.getpid()

    cls = type(f"Placed_{strategy}", (), {"virtual_idle": 600.0, "virtual_placement": strategy, "pid": pid, "__module__": __name__})
    return nexus.remote(cls)


def test_a_class_defined_again_with_another_strategy_is_placed_by_the_new_one(cluster: None) -> None:
    nodes = sorted(n["NodeID"] for n in nexus.nodes() if n["State"] == "ALIVE")
    for name in ("pack", "spread"):  # (one kind, as a notebook cell run again makes it)
        cls = type("Again", (), {"virtual_placement": name, "pid": lambda self: os.getpid(), "__module__": __name__})
        nexus.get([nexus.remote(cls).virtual(f"{name}-{i}").pid.remote() for i in range(3)], timeout=120)
    listing = nexus.get(nexus.get_actor("nexus:directory").listing.remote(), timeout=60)
    placed = {name: {e["node"] for e in listing if e["identity"].startswith(name)} for name in ("pack", "spread")}
    assert len(placed["pack"]) == 1 and placed["spread"] == set(nodes), placed


@pytest.mark.timeout(300)
def test_each_strategy_places_the_activations_where_it_says(cluster: None) -> None:
    nodes = sorted(n["NodeID"] for n in nexus.nodes() if n["State"] == "ALIVE")
    assert len(nodes) == 3
    identities = [f"user-{i}" for i in range(6)]
    directory = None
    for name in ("consistent_hash", "rendezvous", "static", "spread", "pack"):
        kind = _kind(name)
        pids = nexus.get([kind.virtual(f"{name}-{i}").pid.remote() for i in identities], timeout=120)
        directory = directory or nexus.get_actor("nexus:directory")
        listing = {e["identity"]: e for e in nexus.get(directory.listing.remote(), timeout=60) if e["identity"].startswith(name)}
        where = {w.pid: w.node_id for w in nexus.state.list_workers()}
        chosen = [listing[f"{name}-{i}"]["node"] for i in identities]
        assert [where[p] for p in pids] == chosen, f"{name}: each activation runs on the node its strategy chose"
        if name in ("spread", "pack"):
            assert len(set(chosen)) == (3 if name == "spread" else 1), f"{name}: {chosen}"
        else:
            expected = load_strategy(name)
            expected.set_nodes(nodes)
            assert chosen == [expected.owner(f"{name}-{i}") for i in identities], f"{name}: as the strategy computes it ({nodes})"
