"""Placement groups over several nodes: which node each strategy puts the bundles on, and work running there.

A head with 1 CPU and a node with 2 run as processes of their own (``nexus start --head``, ``nexus start
--address``), with this process attached as a driver; a third node joins for a group that waits for it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

import nexus
from nexus.core.errors import ActorDiedError, ObjectLostError
from nexus.util import PlacementGroup, get_placement_group, placement_group, placement_group_table, remove_placement_group

from ..conftest import wait_until
from ..remote.test_membership import Home
from .test_placement_groups import Where, into, pid


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """A head with 1 CPU and a node with 2, as processes of their own, and this process attached as a driver."""
    home = Home(tmp_path_factory.mktemp("groups") / "nexus-home")
    saved = os.environ.get("NEXUS_HOME")
    os.environ["NEXUS_HOME"] = str(home.path)
    try:
        home.start_head("--num-cpus", "1")
        home.start_node("--num-cpus", "2")
        nexus.init(address="auto")
        try:
            wait_until(lambda: nexus.cluster_resources().get("CPU") == 3.0, timeout=60)
            yield home
        finally:
            nexus.shutdown()
    finally:
        if saved is None:
            os.environ.pop("NEXUS_HOME", None)
        else:
            os.environ["NEXUS_HOME"] = saved
        left = home.stop_all()
        assert not left, f"daemons left running: {left}"


def _ids() -> tuple[str, set[str]]:
    """The head's node id (the node with 1 CPU, before a third joins) and every alive node's."""
    listed = [n for n in nexus.nodes() if n["Alive"]]
    head = next(n["NodeID"] for n in listed if n["Resources"].get("CPU") == 1.0)
    return head, {n["NodeID"] for n in listed}


def _ran_on(refs: list) -> list[str]:
    """The nodes the tasks or calls of ``refs`` ran on (each returns its worker's pid)."""
    pids = nexus.get(refs, timeout=60)
    by_pid = {w.pid: w.node_id for w in nexus.state.list_workers()}
    return [by_pid[p] for p in pids]


def _placed(pg: PlacementGroup) -> list[str]:
    assert pg.wait(60), placement_group_table(pg)
    spread = placement_group_table(pg)["bundles_to_node_id"]
    return [spread[i] for i in range(pg.bundle_count)]


def test_each_strategy_puts_the_bundles_where_it_says_and_work_runs_there(nodes: Home) -> None:
    head, every = _ids()
    (big,) = every - {head}  # the node with 2 CPUs
    one = [{"CPU": 1}, {"CPU": 1}]
    assert _placed(strict := placement_group(one, strategy="STRICT_PACK")) == [big, big], "both on the one node with room"
    assert _ran_on([pid.options(scheduling_strategy=into(strict, i)).remote() for i in (0, 1)]) == [big, big]
    remove_placement_group(strict)
    assert _placed(pack := placement_group(one, strategy="PACK")) == [big, big], "as few nodes as can hold them"
    remove_placement_group(pack)
    pack3 = placement_group([{"CPU": 1}] * 3, strategy="PACK")  # three CPUs: every CPU of the cluster, on two nodes
    assert sorted(_placed(pack3)) == sorted([head, big, big])
    remove_placement_group(pack3)
    for strategy in ("SPREAD", "STRICT_SPREAD"):
        spread = placement_group(one, strategy=strategy)
        where = _placed(spread)
        assert set(where) == {head, big}, f"{strategy}: one bundle on each node"
        ran = _ran_on([pid.options(scheduling_strategy=into(spread, i)).remote() for i in (0, 1)])
        assert ran == where, "a task in a bundle runs on the bundle's node"
        actor = Where.options(scheduling_strategy=into(spread, 1)).remote()
        assert _ran_on([actor.pid.remote()]) == [where[1]], "so does an actor"
        remove_placement_group(spread)
        with pytest.raises(ActorDiedError, match="placement group"):
            nexus.get(actor.pid.remote(), timeout=60)
    wait_until(lambda: nexus.available_resources().get("CPU") == 3.0)


def test_a_strict_spread_wider_than_the_cluster_waits_for_a_node_to_join(nodes: Home) -> None:
    pg = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD", name="wide")
    assert pg.wait(0) is False
    entry = placement_group_table(pg)
    assert entry["state"] == "PENDING" and entry["stats"]["scheduling_state"] == "INFEASIBLE", entry
    assert "STRICT_SPREAD needs 3 different nodes" in entry["waiting_for"], entry
    queued = pid.options(scheduling_strategy=into(pg, 2)).remote()
    nodes.start_node("--num-cpus", "1")
    assert nexus.get(pg.ready(), timeout=60) == pg, "placed once a third node joined"
    where = _placed(pg)
    assert len(set(where)) == 3 and set(where) == _ids()[1]
    assert _ran_on([queued]) == [where[2]], "the task queued into bundle 2 ran on its node, once it was there"
    assert get_placement_group("wide") == pg
    remove_placement_group(pg)
    wait_until(lambda: nexus.available_resources().get("CPU") == 4.0)


def test_bundles_on_a_node_that_dies_are_reserved_again_and_their_actor_restarts_with_them(nodes: Home) -> None:
    if len(_ids()[1]) < 3:  # (run alone: the test above joined a third node)
        nodes.start_node("--num-cpus", "1")
        wait_until(lambda: len(_ids()[1]) == 3, timeout=60)
    victim = max(nodes.node_pids())  # a node with 1 CPU: its bundle can go nowhere else until another joins
    pg = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD")
    where = _placed(pg)
    lost = where.index(f"{victim:06x}")
    actor = Where.options(scheduling_strategy=into(pg, lost), num_cpus=1, max_restarts=1).remote()
    assert _ran_on([actor.pid.remote()]) == [f"{victim:06x}"]
    before = set(nodes.node_pids())
    os.kill(nodes.node_pids()[victim], signal.SIGKILL)
    wait_until(lambda: placement_group_table(pg)["state"] == "RESCHEDULING", timeout=60)
    entry = placement_group_table(pg)
    assert lost not in entry["bundles_to_node_id"] and len(entry["bundles_to_node_id"]) == 2, entry
    assert "STRICT_SPREAD needs 3 different nodes" in entry["waiting_for"], "no node of the two left may take it"
    nodes.start_node("--num-cpus", "1")
    (newcomer,) = set(nodes.node_pids()) - before
    wait_until(lambda: placement_group_table(pg)["state"] == "CREATED", timeout=60)
    assert placement_group_table(pg)["bundles_to_node_id"][lost] == f"{newcomer:06x}"
    assert _ran_on([actor.pid.remote()]) == [f"{newcomer:06x}"], "the actor started again in its bundle, on the bundle's new node"
    remove_placement_group(pg)


@nexus.remote
def big() -> bytes:
    return b"x" * 2_000_000  # (stored where it was made: in that node's store)


def test_a_value_made_in_a_removed_group_and_lost_with_its_node_is_lost_not_waited_for(nodes: Home) -> None:
    if len(_ids()[1]) < 3:
        nodes.start_node("--num-cpus", "1")
        wait_until(lambda: len(_ids()[1]) == 3, timeout=60)
    victim = max(nodes.node_pids())
    pg = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD")
    there = _placed(pg).index(f"{victim:06x}")
    ref = big.options(scheduling_strategy=into(pg, there)).remote()
    nexus.wait([ref], timeout=60)
    remove_placement_group(pg)
    os.kill(nodes.node_pids()[victim], signal.SIGKILL)
    wait_until(lambda: len(_ids()[1]) == 2, timeout=60)
    # (its task is not run again: the group that held what it needs is gone; not "big can never run now")
    with pytest.raises(ObjectLostError):
        nexus.get(ref, timeout=60)
    nodes.start_node("--num-cpus", "1")
    wait_until(lambda: len(_ids()[1]) == 3, timeout=60)
