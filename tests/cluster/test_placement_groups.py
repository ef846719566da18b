"""Ray's placement groups on a real cluster of one host: reserving bundles, placing work in them, waiting, removing.

(test_placement_groups_nodes.py runs them over several nodes: where each strategy puts the bundles.)
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import nexus
from nexus.core.errors import ActorDiedError, NexusError, TaskCancelledError
from nexus.util import (
    PlacementGroup,
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from nexus.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from ..conftest import wait_until


@nexus.remote
def node_of():
    return f"{int(os.environ['NEXUS_NODE_ID']):06x}"


@nexus.remote
def pid():
    return os.getpid()


@nexus.remote
def outside():  # a plain task: one CPU, in no group
    return "ran"


@nexus.remote
def hold_until(path, started):
    """Run (busy, never blocked in get) until ``path`` exists; say it started by making ``started``."""
    Path(started).touch()
    deadline = time.monotonic() + 60  # (a failed test must not hold a worker for ever)
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    return "released"


@nexus.remote
def current_group():
    pg = get_current_placement_group()
    return None if pg is None else pg.id.hex()


@nexus.remote
def parent_and_child():
    """The group this task runs in and the one a child it starts (naming no strategy) runs in."""
    child = current_group.remote()
    return get_current_placement_group().id.hex(), nexus.get(child, timeout=60)


@nexus.remote
def nested(depth):
    """The group of each of ``depth`` tasks, each started by the one before and waited for in get."""
    here = get_current_placement_group()
    below = nexus.get(nested.remote(depth - 1), timeout=60) if depth > 1 else []
    return [None if here is None else here.id.hex(), *below]


@nexus.remote
class Where:
    def pid(self):
        return os.getpid()

    def group(self):
        pg = get_current_placement_group()
        return None if pg is None else pg.id.hex()


def into(pg: PlacementGroup, index: int = -1, capture: bool = False) -> PlacementGroupSchedulingStrategy:
    return PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=index, placement_group_capture_child_tasks=capture)


# -- one host ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local() -> Iterator[None]:
    nexus.init(num_cpus=2, resources={"slot": 2})
    try:
        yield
    finally:
        nexus.shutdown()


@pytest.fixture
def cluster(local: None) -> Iterator[None]:
    """The local cluster; every group a test leaves is removed after it, and what they held is free again."""
    yield
    for entry in placement_group_table().values():
        if entry["state"] != "REMOVED":
            remove_placement_group(PlacementGroup(_id(entry), list(entry["bundles"].values())))
    wait_until(lambda: nexus.available_resources().get("CPU") == 2.0 and nexus.available_resources().get("slot") == 2.0)
    assert not [k for k in nexus.available_resources() if "_group_" in k], "a removed group's names are gone"


def _id(entry: dict) -> object:
    from nexus.util.placement_group import PlacementGroupID

    return PlacementGroupID(int(entry["placement_group_id"], 16))


@pytest.mark.parametrize(
    ("bundles", "match"),
    [
        ([], "at least one bundle"),
        ({"CPU": 1}, "takes a list of bundles"),
        ("CPU", "takes a list of bundles"),
        ([{}], "bundle 0 is {}: a bundle must reserve something"),
        ([{"CPU": 1}, {"CPU": 0}], "bundle 1 is {'CPU': 0}: a bundle must reserve something"),
        ([{"CPU": -1}], "bundle 0 asks for -1 CPU: amounts cannot be negative"),
        ([{"CPU": "2"}], "bundle 0 asks for '2' CPU: an amount is a finite number"),
        ([{"CPU": math.inf}], "an amount is a finite number"),
        ([{"CPU": True}], "an amount is a finite number"),
        ([["CPU", 1]], "a bundle is a dict of resource names to amounts"),
        ([{1: 1.0}], "resource names are non-empty strings"),
        ([{"CPU_group_0_abc": 1}], "'_group_' is kept for the names of groups' reservations"),
    ],
)
def test_bad_bundles_are_refused_saying_what_is_wrong_and_what_to_pass(cluster: None, bundles: object, match: str) -> None:
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace("[", r"\[").replace("{", r"\{")):
        placement_group(bundles)  # type: ignore[arg-type]
    assert placement_group_table() == {} or all(e["state"] == "REMOVED" for e in placement_group_table().values())


def test_a_bad_strategy_lifetime_or_name_is_refused(cluster: None) -> None:
    with pytest.raises(ValueError, match="one of PACK, SPREAD, STRICT_PACK, STRICT_SPREAD, not 'TIGHT'"):
        placement_group([{"CPU": 1}], strategy="TIGHT")
    with pytest.raises(ValueError, match="lifetime is None or 'detached', not 'forever'"):
        placement_group([{"CPU": 1}], lifetime="forever")
    with pytest.raises(ValueError, match="name is a string"):
        placement_group([{"CPU": 1}], name=7)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty name"):
        get_placement_group("")


def test_ready_and_wait_resolve_once_every_bundle_is_reserved(cluster: None) -> None:
    pg = placement_group([{"CPU": 1}, {"slot": 1}], strategy="PACK", name="pair", lifetime="detached")
    assert nexus.get(pg.ready(), timeout=30) == pg, "ready() resolves to the group's handle"
    ready, waiting = nexus.wait([pg.ready()], timeout=30)
    assert len(ready) == 1 and waiting == []
    assert pg.wait(30) is True
    assert pg.bundle_specs == [{"CPU": 1.0}, {"slot": 1.0}] and pg.bundle_count == 2
    entry = placement_group_table(pg)
    assert entry == placement_group_table()[pg.id.hex()]
    node = nexus.nodes()[0]["NodeID"]
    assert entry["state"] == "CREATED" and entry["bundles_to_node_id"] == {0: node, 1: node}
    assert entry["name"] == "pair" and entry["strategy"] == "PACK" and entry["is_detached"] is True
    assert entry["stats"]["scheduling_state"] == "FINISHED" and entry["waiting_for"] is None
    assert get_placement_group("pair") == pg
    with pytest.raises(ValueError, match="a placement group named 'pair' exists already"):
        placement_group([{"CPU": 1}], name="pair")
    with pytest.raises(ValueError, match="no placement group named 'other'"):
        get_placement_group("other")


def test_a_bundle_withholds_what_it_reserves_from_work_outside_the_group(cluster: None) -> None:
    pg = placement_group([{"CPU": 2, "slot": 1}])
    assert pg.wait(30)
    free = nexus.available_resources()
    assert "CPU" not in free and free["slot"] == 1.0, "the bundle's CPUs and slot are no one else's now"
    left_out = outside.remote()
    # Work in the group runs (on the bundle's reservation) while the plain task outside it waits for a CPU
    assert nexus.get([pid.options(scheduling_strategy=into(pg, 0)).remote() for _ in range(4)], timeout=60)
    wait_until(lambda: [t for t in nexus.state.list_tasks() if t.name.endswith("outside") and t.state == "queued"])
    queued = next(t for t in nexus.state.list_tasks() if t.name.endswith("outside"))
    assert "CPU" in (queued.waiting_for or ""), queued
    ready, _ = nexus.wait([left_out], timeout=0)
    assert ready == [], "a task outside the group never ran on the CPUs the bundle holds"
    remove_placement_group(pg)
    assert pg.wait(0) is False, "a group placed and then removed is not ready any more"
    assert nexus.get(left_out, timeout=60) == "ran", "once removed, what it held is free for others"


def test_a_group_that_does_not_fit_now_waits_and_is_placed_when_room_frees(cluster: None) -> None:
    hog = Where.options(num_cpus=2).remote()  # holds both CPUs while it lives
    nexus.get(hog.pid.remote(), timeout=60)
    pg = placement_group([{"CPU": 1}])
    assert pg.wait(0) is False
    entry = placement_group_table(pg)
    assert entry["state"] == "PENDING" and entry["stats"]["scheduling_state"] == "NO_RESOURCES", entry
    assert "fits on no node's free resources now" in entry["waiting_for"] and "0 CPU" in entry["waiting_for"], entry
    parked = Where.options(scheduling_strategy=into(pg, 0)).remote()  # created now, placed with its group
    wait_until(lambda: [a for a in nexus.state.list_actors() if "not placed yet" in (a.waiting_for or "")])
    queued = node_of.options(scheduling_strategy=into(pg)).remote()
    ready, _ = nexus.wait([pg.ready(), queued], num_returns=2, timeout=0)
    assert ready == []
    nexus.kill(hog)
    assert nexus.get(pg.ready(), timeout=60) == pg, "placed once the actor's CPUs were free"
    assert placement_group_table(pg)["state"] == "CREATED"
    assert nexus.get(queued, timeout=60) == nexus.nodes()[0]["NodeID"]  # (one host: NEXUS_NODE_ID is its node)
    assert nexus.get(parked.pid.remote(), timeout=60) > 0, "the actor created into it started once it was placed"


def test_a_group_no_node_could_ever_hold_stays_pending_and_says_why(cluster: None) -> None:
    pg = placement_group([{"CPU": 1}, {"CPU": 64}])
    assert pg.wait(0) is False
    entry = placement_group_table(pg)
    assert entry["state"] == "PENDING" and entry["stats"]["scheduling_state"] == "INFEASIBLE"
    assert "bundle 1 {'CPU': 64} is larger than any node alive now" in entry["waiting_for"], entry
    assert "2 CPU" in entry["waiting_for"], "it says what the nodes have"
    strict = placement_group([{"CPU": 1}, {"CPU": 2}], strategy="STRICT_PACK")
    assert "STRICT_PACK needs {'CPU': 3} on one node" in placement_group_table(strict)["waiting_for"]
    assert nexus.available_resources().get("CPU") == 2.0, "a pending group holds nothing"
    remove_placement_group(pg)
    with pytest.raises(NexusError, match="was removed before it was placed"):
        nexus.get(pg.ready(), timeout=30)
    assert pg.wait(5) is False
    assert placement_group_table(pg)["state"] == "REMOVED"


def test_tasks_and_actors_in_a_bundle_use_its_reservation(cluster: None, tmp_path: Path) -> None:
    pg = placement_group([{"CPU": 1, "slot": 1}, {"CPU": 1}], strategy="STRICT_PACK")
    assert pg.wait(30)
    actor = Where.options(scheduling_strategy=into(pg, 0), num_cpus=1, resources={"slot": 1}).remote()
    assert nexus.get(actor.group.remote(), timeout=60) == pg.id.hex()
    # bundle 0 is the actor's now: a task asking for its CPU waits; one asking for nothing of it runs
    busy = pid.options(scheduling_strategy=into(pg, 0)).remote()
    assert nexus.get(pid.options(scheduling_strategy=into(pg, 0), num_cpus=0).remote(), timeout=60) > 0
    assert nexus.get(pid.options(scheduling_strategy=into(pg, 1)).remote(), timeout=60) > 0, "bundle 1 is free"
    ready, _ = nexus.wait([busy], timeout=0)
    assert ready == []
    nexus.kill(actor)
    assert nexus.get(busy, timeout=60) > 0, "it runs once the actor's hold on the bundle ends"
    remove_placement_group(pg)
    # "any bundle" (-1) is one with room: here only bundle 0 has a CPU, so one task runs in the group at a time,
    # while the CPU the group did not reserve runs work outside it
    pg = placement_group([{"CPU": 1}, {"slot": 1}])
    started = [tmp_path / f"started-{i}" for i in range(2)]
    release = tmp_path / "release"
    held = [hold_until.options(scheduling_strategy=into(pg)).remote(str(release), str(s)) for s in started]
    wait_until(lambda: any(s.exists() for s in started))
    assert nexus.get(outside.remote(), timeout=60) == "ran"
    assert sum(s.exists() for s in started) == 1, "the second waits for bundle 0's CPU, though a worker is idle"
    release.touch()
    assert nexus.get(held, timeout=60) == ["released"] * 2


def test_work_into_a_bundle_that_does_not_exist_or_cannot_fit_is_refused_at_the_call(cluster: None) -> None:
    pg = placement_group([{"CPU": 1}, {"slot": 1}])
    with pytest.raises(ValueError, match=r"placement_group_bundle_index 2 does not exist: the group has 2 bundles \(0 to 1; -1"):
        into(pg, 2)
    with pytest.raises(ValueError, match="placement_group_bundle_index -2 does not exist"):
        into(pg, -2)
    with pytest.raises(ValueError, match="takes the PlacementGroup that placement_group"):
        PlacementGroupSchedulingStrategy("pg")
    with pytest.raises(ValueError, match=r"Cannot schedule pid with the placement group because the resource request \{'CPU': 2\}"):
        pid.options(scheduling_strategy=into(pg, 0), num_cpus=2).remote()
    with pytest.raises(ValueError, match=r"\{'CPU': 1\} cannot fit into bundle 1 of the placement group, \{'slot': 1.0\}\. Ask"):
        pid.options(scheduling_strategy=into(pg, 1)).remote()  # (a task needs a CPU, and bundle 1 has none)
    with pytest.raises(ValueError, match=r"\{'slot': 2\} cannot fit into any bundles for the placement group, \[\{'CPU': 1.0\}, \{'slot"):
        Where.options(scheduling_strategy=into(pg), resources={"slot": 2}).remote()
    with pytest.raises(ValueError, match="a label_selector and a PlacementGroupSchedulingStrategy do not go together"):
        pid.options(scheduling_strategy=into(pg, 0), label_selector={"zone": "a"}).remote()
    assert nexus.get(pid.options(scheduling_strategy=into(pg, 1), num_cpus=0).remote(), timeout=60) > 0
    remove_placement_group(pg)
    with pytest.raises(ValueError, match="cannot be scheduled into placement group .* it was removed"):
        pid.options(scheduling_strategy=into(pg, 0)).remote()
    with pytest.raises(ValueError, match="it was removed"):
        Where.options(scheduling_strategy=into(pg, 0)).remote()


def test_removing_a_group_kills_its_actors_cancels_its_tasks_and_frees_what_it_held(cluster: None, tmp_path: Path) -> None:
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], name="doomed")
    assert pg.wait(30)
    actor = Where.options(scheduling_strategy=into(pg, 0), num_cpus=1).remote()
    actor_pid = nexus.get(actor.pid.remote(), timeout=60)
    started, release = tmp_path / "started", tmp_path / "release"
    running = hold_until.options(scheduling_strategy=into(pg, 1)).remote(str(release), str(started))
    wait_until(started.exists)
    queued = pid.options(scheduling_strategy=into(pg, 1)).remote()  # bundle 1 is busy: it waits
    outside_before = outside.remote()
    remove_placement_group(pg)
    with pytest.raises(ActorDiedError, match=r"was killed: its placement group \w+ was removed"):
        nexus.get(actor.pid.remote(), timeout=60)
    with pytest.raises(TaskCancelledError, match="cancelled before it ran: its placement group .* was removed"):
        nexus.get(queued, timeout=60)
    with pytest.raises(TaskCancelledError, match="cancelled while it ran: its placement group .* was removed"):
        nexus.get(running, timeout=60)
    wait_until(lambda: not _alive(actor_pid))
    assert placement_group_table(pg)["state"] == "REMOVED"
    assert placement_group_table(pg)["stats"]["scheduling_state"] == "REMOVED"
    with pytest.raises(ValueError, match="no placement group named 'doomed'"):
        get_placement_group("doomed")
    remove_placement_group(pg)  # a second time: nothing to do
    assert nexus.get(outside_before, timeout=60) == "ran"
    wait_until(lambda: nexus.available_resources().get("CPU") == 2.0)
    again = placement_group([{"CPU": 1}], name="doomed")  # the name is free again
    assert again.wait(30)


def test_children_of_a_capturing_task_run_in_its_group(cluster: None) -> None:
    pg = placement_group([{"CPU": 1}])
    assert pg.wait(30)
    group, child = nexus.get(parent_and_child.options(scheduling_strategy=into(pg, 0, capture=True)).remote(), timeout=60)
    # (the bundle has one CPU: the parent lends it back while it waits for its child, as a blocked worker lends its own)
    assert group == child == pg.id.hex(), "the child went into the parent's group"
    chain = nexus.get(nested.options(scheduling_strategy=into(pg, 0, capture=True)).remote(4), timeout=60)
    assert chain == [pg.id.hex()] * 4, "each waiting task lends the one CPU on, down four levels"
    group, child = nexus.get(parent_and_child.options(scheduling_strategy=into(pg, 0)).remote(), timeout=60)
    assert group == pg.id.hex() and child is None, "without capture, the child runs outside the group"
    assert nexus.get(current_group.remote(), timeout=60) is None
    assert get_current_placement_group() is None, "the driver is in no group"


def _alive(pid_: int) -> bool:
    try:
        os.kill(pid_, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_pending_group_is_tried_again_only_when_something_was_freed(cluster: None, tmp_path: Path) -> None:
    release = tmp_path / "release"
    holders = [hold_until.remote(str(release), str(tmp_path / f"started{i}")) for i in range(2)]  # both CPUs, plain tasks
    wait_until(lambda: all((tmp_path / f"started{i}").exists() for i in range(2)))
    pg = placement_group([{"CPU": 2}])
    before = placement_group_table(pg)["stats"]["scheduling_attempt"]
    assert placement_group_table(pg)["stats"]["scheduling_state"] == "NO_RESOURCES"
    queued = [outside.remote() for _ in range(200)]  # each dispatches; none frees anything
    assert placement_group_table(pg)["stats"]["scheduling_attempt"] - before <= 2, "not tried again at every dispatch"
    assert "fits on no node's free resources now" in placement_group_table(pg)["waiting_for"], "it still says why"
    release.touch()
    assert nexus.get(holders + queued, timeout=60) == ["released"] * 2 + ["ran"] * 200
    assert nexus.get(pg.ready(), timeout=60) == pg, "placed once the plain tasks' workers were idle"


def test_work_submitted_while_its_group_is_removed_fails_instead_of_hanging(cluster: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from nexus.cluster.head.groups import GroupDirectory

    pg = placement_group([{"CPU": 1}])
    assert pg.wait(30)
    checked = GroupDirectory.binding

    def removed_after_the_check(self: GroupDirectory, *args: object, **kwargs: object) -> object:
        found = checked(self, *args, **kwargs)  # (the group was there when it was looked at ...)
        remove_placement_group(pg)  # (... and is removed before the work is queued)
        return found

    monkeypatch.setattr(GroupDirectory, "binding", removed_after_the_check)
    with pytest.raises(TaskCancelledError, match="its placement group .* was removed"):
        nexus.get(pid.options(scheduling_strategy=into(pg)).remote(), timeout=60)
    pg = placement_group([{"CPU": 1}])  # (the first one is removed for good)
    assert pg.wait(30)
    with pytest.raises(ActorDiedError, match="cannot be created: its placement group .* was removed"):
        Where.options(scheduling_strategy=into(pg)).remote()
