"""A worker as the head sees it: its states, when it takes tasks, what it holds and gives back when it dies."""

from __future__ import annotations

import pytest

from nexus.cluster.state.workers import InvalidTransitionError, WorkerRecord, WorkerStatus
from nexus.core.errors import NexusError

from .stand_ins import ready_worker


def test_a_new_worker_is_alive_but_takes_no_work_until_it_said_hello() -> None:
    w = WorkerRecord(3, "task")
    assert w.state is WorkerStatus.STARTING
    assert w.alive and not w.ready and not w.idle_for_tasks()
    assert w.name == "worker-3"


def test_a_worker_goes_from_starting_to_ready_to_broken_to_dead() -> None:
    w = WorkerRecord(0, "task")
    w.to(WorkerStatus.READY)
    assert w.ready
    w.to(WorkerStatus.BROKEN)
    assert w.broken and w.alive and not w.ready
    w.to(WorkerStatus.DEAD)
    assert not w.alive


@pytest.mark.parametrize("early", [WorkerStatus.BROKEN, WorkerStatus.DEAD])
def test_a_worker_may_break_or_die_before_it_ever_was_ready(early: WorkerStatus) -> None:
    w = WorkerRecord(0, "actor")
    w.to(early)
    assert w.state is early


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ([WorkerStatus.DEAD], WorkerStatus.READY),
        ([WorkerStatus.DEAD], WorkerStatus.DEAD),
        ([WorkerStatus.READY], WorkerStatus.STARTING),
        ([WorkerStatus.READY], WorkerStatus.READY),
        ([WorkerStatus.BROKEN], WorkerStatus.READY),
    ],
)
def test_a_worker_cannot_go_back_and_a_dead_one_stays_dead(path: list[WorkerStatus], target: WorkerStatus) -> None:
    w = WorkerRecord(7, "task")
    for state in path:
        w.to(state)
    with pytest.raises(InvalidTransitionError, match=f"worker-7 cannot go from {path[-1].value} to {target.value}"):
        w.to(target)
    assert w.state is path[-1]


def test_an_invalid_transition_is_a_nexus_error() -> None:
    assert issubclass(InvalidTransitionError, NexusError)


def test_a_ready_worker_takes_tasks_while_idle_or_blocked_in_get() -> None:
    w = ready_worker()
    assert w.idle_for_tasks()
    w.inflight = 1
    assert not w.idle_for_tasks()
    w.blocked = True  # its main thread waits in get: tasks sent now run on top of it
    assert w.idle_for_tasks()
    w.to(WorkerStatus.BROKEN)
    assert not w.idle_for_tasks()


def test_a_worker_counts_the_refs_and_pins_it_takes_and_gives_back() -> None:
    w = ready_worker()
    w.count(5, 2, 1)
    w.count(5, -1, 0)
    w.count(6, 0, 3)
    assert w.held == {5: 1}
    assert w.pinned == {5: 1, 6: 3}


def test_a_dead_worker_hands_back_what_it_held_once() -> None:
    w = ready_worker()
    w.count(5, 2, 1)
    w.allocs[4096] = 128
    w.outbox.append(("task", 1))
    assert w.forget() == ({5: 2}, {5: 1}, {4096: 128})
    assert w.forget() == ({}, {}, {})
    assert w.outbox == []


def test_ids_carry_their_node_and_process_and_never_meet():
    from nexus.cluster.state.ids import IdSpace, node_of, process_of

    head, worker, other_node = IdSpace(7, 0), IdSpace(7, 3), IdSpace(8, 3)
    made = [space.new() for space in (head, worker, other_node) for _ in range(1000)]
    assert len(set(made)) == len(made)
    assert {(node_of(i), process_of(i)) for i in made} == {(7, 0), (7, 3), (8, 3)}
    assert head.worker_id(3) != other_node.worker_id(3)
    with pytest.raises(ValueError, match="node"):
        IdSpace(0, 0)
