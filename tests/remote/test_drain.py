"""Draining a node of a real cluster (``nexus start --head`` and a node, a driver attached): nothing new goes
there, virtual and restartable actors move, its running task finishes, then it leaves (``nexus drain``)."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

import nexus
from nexus.cluster.strategies import NodeAffinitySchedulingStrategy
from tests.conftest import wait_until
from tests.remote.test_membership import Home


@nexus.remote
def pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


@nexus.remote
class Store:
    """Where the accounts keep their balances while passivated (on the head's node)."""

    def __init__(self) -> None:
        self.saved: dict[str, int] = {}

    def save(self, identity: str, balance: int) -> None:
        self.saved[identity] = balance

    def load(self, identity: str) -> int:
        return self.saved.get(identity, 0)


@nexus.remote
class Account:
    virtual_idle = 600.0

    def on_activate(self, identity: str) -> None:
        self.identity = identity
        self.balance = nexus.get(nexus.get_actor("store").load.remote(identity), timeout=30)

    def on_deactivate(self) -> None:
        nexus.get(nexus.get_actor("store").save.remote(self.identity, self.balance), timeout=30)

    def deposit(self, amount: int) -> tuple[int, int]:
        self.balance += amount
        return self.balance, os.getpid()


@nexus.remote
class SharedAccount(Account._cls):  # type: ignore[misc,name-defined]
    virtual_hosting = "shared"  # (many activations in one host process a node)


@nexus.remote
class Keeper:
    def pid(self) -> int:
        return os.getpid()


def _node_of(pid: int) -> str:
    return {w.pid: w.node_id for w in nexus.state.list_workers()}[pid]


def _state(node: str) -> str:
    return next(n["State"] for n in nexus.nodes() if n["NodeID"] == node)


@pytest.fixture
def cluster(home: Home, monkeypatch: pytest.MonkeyPatch) -> Any:
    home.start_head("--node-timeout", "30")
    home.start_node("--num-cpus", "2")
    monkeypatch.setenv("NEXUS_HOME", str(home.path))
    nexus.init(address="auto")
    try:
        wait_until(lambda: nexus.cluster_resources().get("CPU") == 4.0, timeout=60)
        (node,) = [n["NodeID"] for n in nexus.nodes() if n["Alive"] and n["NodeID"] != _head_node()]
        yield home, node
    finally:
        nexus.shutdown()


def _head_node() -> str:
    return _node_of(nexus.get(Keeper.options(scheduling_strategy=_head_affinity()).remote().pid.remote(), timeout=60))


def _head_affinity() -> Any:
    head = next(n for n in nexus.nodes() if n["NodeManagerAddress"] == "127.0.0.1" and n["Resources"].get("CPU") == 2.0)
    return NodeAffinitySchedulingStrategy(head["NodeID"], soft=False)


@pytest.mark.parametrize("hosting", ["process", "shared"])
def test_a_drained_node_takes_nothing_new_hands_its_actors_over_finishes_its_task_and_leaves(cluster: Any, hosting: str) -> None:
    home, node = cluster
    here = NodeAffinitySchedulingStrategy(node, soft=True)
    Store.options(name="store", scheduling_strategy=_head_affinity()).remote()
    accounts = [(Account if hosting == "process" else SharedAccount).virtual(f"a{i}") for i in range(12)]
    placed = {i: nexus.get(a.deposit.remote(10), timeout=60) for i, a in enumerate(accounts)}
    on_node = [i for i, (_, pid) in placed.items() if _node_of(pid) == node]
    assert on_node, "placement put some of the 12 activations on each of the two nodes"
    keeper = Keeper.options(max_restarts=1, scheduling_strategy=here).remote()
    assert _node_of(nexus.get(keeper.pid.remote(), timeout=60)) == node
    running = pid_after.options(scheduling_strategy=here).remote(3.0)
    wait_until(lambda: any(t.state == "running" for t in nexus.state.list_tasks() if t.name.endswith("pid_after")), timeout=30)

    there = {w.pid for w in nexus.state.list_workers() if w.node_id == node}  # (gone from the listing once it left)
    assert nexus.drain_node(node, deadline=30)["state"] == "DRAINING"
    assert _state(node) == "DRAINING"
    later = nexus.get([pid_after.remote(0) for _ in range(20)], timeout=60)
    assert all(_node_of(pid) != node for pid in later), "no new task went to the draining node"
    wait_until(lambda: _state(node) == "DEAD", timeout=90)

    assert nexus.get(running, timeout=30) in there, "the task running there finished there"
    for i in on_node:
        balance, pid = nexus.get(accounts[i].deposit.remote(1), timeout=60)
        assert balance == 11, "passivated with its state saved, activated again elsewhere with it"
        assert _node_of(pid) != node
    assert _node_of(nexus.get(keeper.pid.remote(), timeout=60)) != node, "restarted on another node"
    log = (home.path / "head" / "head.log").read_text()
    assert f"node {node} is drained ({len(on_node)} virtual activation(s) passivated)" in log


def test_nexus_drain_says_what_is_wrong_and_drains_a_node_until_it_has_left(cluster: Any) -> None:
    home, node = cluster
    assert "there is no node" in home.nexus("drain", "abcdef", check=False).stderr
    assert "the head's own" in home.nexus("drain", _head_node(), check=False).stderr
    assert "hex" in home.nexus("drain", "zz", check=False).stderr
    with pytest.raises(ValueError, match="positive number of seconds"):
        nexus.drain_node(node, deadline=0)
    out = home.nexus("drain", node, "--deadline", "10").stdout
    assert "is draining" in out and "has left (it was drained)" in out
    assert _state(node) == "DEAD"
