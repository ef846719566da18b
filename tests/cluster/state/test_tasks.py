"""Tasks waiting for a worker: the queue's bounds, fitting, dispatch with prefetch, accounting, stealing."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.cluster.config import ClusterConfig
from nexus.cluster.state.resources import Resources
from nexus.cluster.state.tasks import TaskQueue, TaskRecord
from nexus.cluster.state.workers import WorkerRecord, WorkerStatus

from .stand_ins import new_id, plain_task, ready_worker, special_task

CONFIG = ClusterConfig()  # prefetch 4, prefetch_quick 16, quick_task 100 us, prefetch_young 2 ms, steal_after 10 ms


def tasks_on(cpus: float = 2, config: ClusterConfig = CONFIG, **custom: float) -> TaskQueue:
    return TaskQueue(Resources(cpus, custom), config)


def workers(n: int) -> list[WorkerRecord]:
    return [ready_worker(i) for i in range(n)]


class Sent(list):
    """What dispatch placed, as (worker index, task), in order."""

    def __call__(self, w: WorkerRecord, task: TaskRecord) -> None:
        self.append((w.index, task))


def dispatch(q: TaskQueue, ws: list[WorkerRecord], now: float = 0.0) -> Sent:
    sent = Sent()
    q.dispatch(ws, now, sent)
    return sent


def busy(w: WorkerRecord, since: float = 0.0, inflight: int = 1) -> WorkerRecord:
    w.inflight, w.cpu_held, w.busy_since = inflight, 1.0, since
    return w


def place(q: TaskQueue, w: WorkerRecord, task: TaskRecord, now: float = 0.0) -> None:
    """Queue ``task`` and send it to ``w``, as dispatch does (taken off the queue, then counted as started)."""
    q.push(task)
    if task.needs is None:
        q.queue.remove(task)  # as prefetch takes a plain task
    else:
        assert q.take_fitting([w]) is task
    q.started(w, task, now)


# -- the queue and its bounds --------------------------------------------------------------


def test_submitting_waits_once_the_queue_is_full_and_goes_on_below_90_percent() -> None:
    q = tasks_on(config=CONFIG.replace(max_queued_tasks=10))
    queued = [plain_task() for _ in range(10)]
    for task in queued:
        q.push(task)
    assert q.full() and len(q) == 10
    q.remove(queued[0])
    assert not q.full() and not q.drained_enough()
    q.remove(queued[1])
    assert q.drained_enough()


def test_the_queue_is_full_once_its_arguments_reach_max_queued_bytes() -> None:
    q = tasks_on(config=CONFIG.replace(max_queued_bytes=1000))
    big = plain_task(nbytes=1000)
    q.push(big)
    assert q.full() and q.queued_bytes == 1000
    q.remove(big)
    assert q.queued_bytes == 0 and q.drained_enough()


def test_arguments_stored_as_an_object_do_not_count_as_queued_bytes() -> None:
    q = tasks_on()
    task = plain_task(nbytes=1 << 40)
    task.args_oid = new_id()
    q.push(task)
    assert q.queued_bytes == 0 and not q.full()


def test_a_task_retried_after_an_error_goes_to_the_back_of_the_queue() -> None:
    q = tasks_on()
    first, second = plain_task(), plain_task()
    q.push(first)
    q.push(second)
    q.requeue_last(first)
    assert list(q.queue) == [second, first]


# -- fitting ---------------------------------------------------------------------------------


def test_free_cpus_are_those_no_running_task_or_actor_holds() -> None:
    q = tasks_on(cpus=4)
    a, b, c, d = workers(4)
    busy(a)
    busy(b).blocked = True  # waits in get: it counts no CPU
    busy(c).to(WorkerStatus.DEAD)
    q.resources.hold({"CPU": 1.0})  # an actor
    assert q.free_cpus([a, b, c, d]) == 2.0


def test_a_task_that_needs_more_than_is_free_waits_and_does_not_hold_back_small_ones() -> None:
    q = tasks_on(cpus=2)
    ws = workers(2)
    busy(ws[0])
    big, small = special_task({"CPU": 2.0}), plain_task()
    q.push(big)
    q.push(small)
    assert dispatch(q, ws) == [(1, small)]
    assert list(q.queue) == [big] and q.special_queued == 1


def test_a_task_waits_while_another_holds_the_resource_it_needs() -> None:
    q = tasks_on(cpus=4, GPU=1)
    ws = workers(2)
    first, second = special_task({"CPU": 1.0, "GPU": 1.0}), special_task({"CPU": 1.0, "GPU": 1.0})
    q.push(first)
    q.push(second)
    assert [t for _, t in dispatch(q, ws)] == [first]
    q.finished(ws[0], first, 1.0)
    assert [t for _, t in dispatch(q, ws, 1.0)] == [second]


def test_a_worker_blocked_in_get_takes_a_task_so_nested_tasks_cannot_deadlock() -> None:
    q = tasks_on(cpus=1)
    (w,) = workers(1)
    busy(w).blocked = True
    q.push(plain_task())
    q.push(plain_task())
    assert not dispatch(q, [w]), "a task that is not the waiting one's went on top of it (a surplus worker takes it)"
    q.stack_on_blocked = True  # (no surplus worker may start)
    assert len(dispatch(q, [w])) == 1  # one task on top of the blocked one, none prefetched behind it
    assert w.inflight == 2


def test_a_worker_blocked_in_get_takes_what_its_task_submitted_first() -> None:
    q = tasks_on(cpus=1)
    (w,) = workers(1)
    outer = plain_task()
    place(q, w, outer)
    w.blocked = True
    unrelated, child = plain_task(), plain_task()
    child.parent = outer.task_id
    q.push(unrelated)
    q.push(child)
    q.stack_on_blocked = True
    assert [t for _, t in dispatch(q, [w])] == [child]


def test_nothing_is_placed_while_every_cpu_is_held() -> None:
    q = tasks_on(cpus=1)
    ws = workers(2)
    q.resources.hold({"CPU": 1.0})  # an actor
    q.push(plain_task())
    assert dispatch(q, ws) == []


# -- dispatch and prefetch -------------------------------------------------------------------


def test_idle_workers_get_one_task_each_before_any_is_prefetched() -> None:
    q = tasks_on(cpus=3)
    ws = workers(3)
    for _ in range(10):
        q.push(plain_task())
    placed = [i for i, _ in dispatch(q, ws)]
    assert placed[:3] == [0, 1, 2]
    assert len(placed) == 10 and max(w.inflight for w in ws) <= CONFIG.prefetch


def test_tasks_are_prefetched_only_while_more_wait_than_there_are_workers() -> None:
    q = tasks_on(cpus=2)
    ws = workers(2)
    for _ in range(4):
        q.push(plain_task())
    assert len(dispatch(q, ws)) == 2  # two left: no more than the workers, so none waits behind another
    q.push(plain_task())
    assert len(dispatch(q, ws)) == 3


def test_quick_functions_are_prefetched_deeper() -> None:
    def depth(last_took: float | None) -> int:
        q = tasks_on(cpus=1)
        (w,) = workers(1)
        if last_took is not None:
            q.took[b"f"] = last_took
        for _ in range(40):
            q.push(plain_task(b"f"))
        dispatch(q, [w])
        return w.inflight

    assert depth(None) == CONFIG.prefetch  # not known to be quick
    assert depth(1.0) == CONFIG.prefetch
    assert depth(10e-6) == CONFIG.prefetch_quick


def test_no_task_is_prefetched_behind_one_that_has_run_for_a_while() -> None:
    q = tasks_on(cpus=1)
    (w,) = workers(1)
    busy(w, since=0.0)
    for _ in range(5):
        q.push(plain_task())
    assert dispatch(q, [w], now=CONFIG.prefetch_young) == []
    assert dispatch(q, [w], now=CONFIG.prefetch_young / 2) != []


def test_no_task_is_prefetched_while_one_with_needs_of_its_own_waits() -> None:
    q = tasks_on(cpus=1, GPU=1)
    (w,) = workers(1)
    for _ in range(3):
        q.push(plain_task())
    q.push(special_task({"CPU": 1.0, "GPU": 1.0}))
    assert len(dispatch(q, [w])) == 1


def test_workers_that_are_not_ready_get_nothing() -> None:
    q = tasks_on(cpus=4)
    starting, broken = WorkerRecord(0, "task"), ready_worker(1)
    broken.to(WorkerStatus.BROKEN)
    q.push(plain_task())
    assert dispatch(q, [starting, broken]) == []


# -- accounting ------------------------------------------------------------------------------


def test_a_task_with_needs_holds_them_while_it_runs() -> None:
    q = tasks_on(cpus=4, GPU=2)
    (w,) = workers(1)
    task = special_task({"CPU": 2.0, "GPU": 1.0})
    q.push(task)
    dispatch(q, [w], now=5.0)
    assert q.running == {task.task_id: task} and task.worker is w
    assert (w.inflight, w.cpu_held, w.busy_since) == (1, 2.0, 5.0)
    assert q.resources.used == {"CPU": 0.0, "GPU": 1.0}  # its CPUs are counted from the worker
    assert q.free_cpus([w]) == 2.0
    q.finished(w, task, 6.0)
    assert q.running == {} and (w.inflight, w.cpu_held) == (0, 0.0)
    assert q.resources.used == {"CPU": 0.0, "GPU": 0.0}


def test_the_next_task_in_a_workers_channel_starts_when_the_one_before_ends() -> None:
    q = tasks_on(cpus=1)
    (w,) = workers(1)
    first, second = plain_task(), plain_task()
    for t in (first, second):
        place(q, w, t)
    q.finished(w, first, 3.0)
    assert (w.inflight, w.cpu_held, w.busy_since) == (1, 1.0, 3.0)


def test_a_task_taken_back_goes_to_the_front_of_the_queue() -> None:
    q = tasks_on(cpus=2, GPU=1)
    (w,) = workers(1)
    taken = special_task({"CPU": 1.0, "GPU": 1.0}, nbytes=7)
    other = plain_task(nbytes=3)
    place(q, w, taken)
    q.push(other)
    q.take_back(w, taken)
    assert list(q.queue) == [taken, other] and taken.worker is None
    assert (q.special_queued, q.queued_bytes, q.stolen, w.inflight) == (1, 10, 1, 0)
    assert q.resources.used["GPU"] == 0.0 and q.running == {}


def test_the_tasks_queued_on_a_worker_are_those_sent_and_not_answered() -> None:
    q = tasks_on(cpus=2)
    a, b = workers(2)
    ta, tb, tc = plain_task(), plain_task(), plain_task()
    place(q, a, ta)
    place(q, b, tb)
    place(q, a, tc)
    assert q.queued_on(a) == [ta.task_id, tc.task_id]
    q.finished(a, ta, 1.0)
    assert q.queued_on(a) == [tc.task_id]


# -- stealing --------------------------------------------------------------------------------


def test_an_idle_worker_steals_from_one_stuck_on_a_long_task() -> None:
    q = tasks_on(cpus=2)
    idle, stuck = workers(2)
    busy(stuck, since=0.0, inflight=3)
    assert q.steal_candidates([idle, stuck], now=CONFIG.steal_after / 2) == (True, [])  # look again soon
    assert q.steal_candidates([idle, stuck], now=CONFIG.steal_after) == (False, [stuck])


def test_nothing_is_stolen_while_tasks_are_queued_or_no_worker_is_idle() -> None:
    q = tasks_on(cpus=2)
    a, b = workers(2)
    busy(b, inflight=3)
    q.push(plain_task())
    assert q.steal_candidates([a, b], now=1.0) == (False, [])
    q.queue.clear()
    busy(a)
    assert q.steal_candidates([a, b], now=1.0) == (False, [])


@pytest.mark.parametrize("why", ["one task only", "blocked", "revoking", "dead"])
def test_no_tasks_are_stolen_from_a_worker_that_has_none_behind_its_current_one_or_cannot_answer(why: str) -> None:
    q = tasks_on(cpus=2)
    idle, victim = workers(2)
    busy(victim, inflight=1 if why == "one task only" else 3)
    victim.blocked = why == "blocked"
    victim.revoking = why == "revoking"
    if why == "dead":
        victim.to(WorkerStatus.DEAD)
    assert q.steal_candidates([idle, victim], now=1.0) == (False, [])


# -- task records and config ---------------------------------------------------------------


def test_a_task_retries_max_retries_times_and_minus_one_is_forever() -> None:
    task = plain_task()
    assert task.retries == 3  # as in Ray
    task.set_retry_options({"max_retries": 1})
    assert task.count_retry() == 1 and task.retries == 0
    task.set_retry_options({"max_retries": -1})
    assert task.count_retry() == 2 and task.retries == -1


@pytest.mark.parametrize(
    ("given", "kept"), [(ValueError, (ValueError,)), ([KeyError, OSError], (KeyError, OSError)), (True, True), (None, False)]
)
def test_retry_exceptions_is_true_or_a_tuple_of_exception_types(given: object, kept: object) -> None:
    task = plain_task()
    task.set_retry_options({"retry_exceptions": given})
    assert task.retry_exceptions == kept


def test_ids_are_unique() -> None:
    ids = [new_id() for _ in range(1000)] + [plain_task().task_id for _ in range(10)]
    assert len(set(ids)) == len(ids)


def test_a_config_is_frozen_and_copied_with_changes() -> None:
    config = ClusterConfig()
    changed = config.replace(prefetch=2)
    assert (changed.prefetch, config.prefetch) == (2, 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.prefetch = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.replace(prefech=2)


# -- a property ------------------------------------------------------------------------------

_a_task = st.tuples(
    st.sampled_from([None, {"CPU": 1.0, "GPU": 1.0}, {"CPU": 0.5}, {"CPU": 2.0}]),  # needs
    st.integers(0, 1000),  # inline argument bytes
    st.booleans(),  # arguments stored as an object
)


def _check_counts(q: TaskQueue) -> None:
    assert q.special_queued == sum(t.needs is not None for t in q.queue)
    assert q.queued_bytes == sum(t.args_blob.nbytes for t in q.queue if not t.args_oid)
    assert q.resources.used["GPU"] == sum((t.needs or {}).get("GPU", 0.0) for t in q.running.values())


_steps = st.lists(
    st.tuples(st.sampled_from(["push", "dispatch", "finish", "take_back", "cancel", "block"]), st.integers(0, 99)), max_size=40
)


@settings(max_examples=80, deadline=None)
@given(specs=st.lists(_a_task, min_size=1, max_size=16), steps=_steps)
def test_queue_accounting_returns_to_zero_after_every_task_is_taken_and_finished(specs: list, steps: list) -> None:
    q = tasks_on(cpus=2, GPU=1)
    ws = workers(3)
    pending = []
    for needs, nbytes, stored in specs:
        task = special_task(needs, nbytes=nbytes) if needs else plain_task(nbytes=nbytes)
        task.args_oid = new_id() if stored else 0
        pending.append(task)
    now = 0.0
    for action, pick in steps:
        now += 0.001
        running = sorted(q.running.values(), key=lambda t: t.task_id)
        if action == "push" and pending:
            q.push(pending.pop())
        elif action == "dispatch":
            q.dispatch(ws, now, lambda w, t: None)
        elif action == "finish" and running:
            task = running[pick % len(running)]
            assert task.worker is not None
            q.finished(task.worker, task, now)
        elif action == "take_back" and running:
            task = running[pick % len(running)]
            assert task.worker is not None
            q.take_back(task.worker, task)
        elif action == "cancel" and q.queue:
            q.remove(q.queue[pick % len(q.queue)])
        elif action == "block":
            w = ws[pick % len(ws)]
            w.blocked = not w.blocked
        _check_counts(q)
    for w in ws:
        w.blocked = False
    while pending:
        q.push(pending.pop())
    for _ in range(100):  # drain: every task placed and finished
        if not q.queue and not q.running:
            break
        for task in sorted(q.running.values(), key=lambda t: t.task_id):
            assert task.worker is not None
            q.finished(task.worker, task, now)
        q.dispatch(ws, now, lambda w, t: None)
        _check_counts(q)
    assert (q.queued_bytes, q.special_queued, len(q.queue), len(q.running)) == (0, 0, 0, 0)
    assert q.resources.used == {"CPU": 0.0, "GPU": 0.0}
    assert all(w.inflight == 0 for w in ws) and q.free_cpus(ws) == 2.0


# -- scheduling strategies -------------------------------------------------------------------


def on_nodes(*nodes: int) -> list[WorkerRecord]:
    ws = workers(len(nodes))
    for w, node in zip(ws, nodes, strict=True):
        w.node = node
    return ws


def placed(strategy: tuple) -> TaskRecord:
    task = special_task({"CPU": 1.0})
    task.strategy = strategy
    return task


def test_a_hard_node_affinity_runs_only_on_that_node_and_waits_while_it_is_busy() -> None:
    q = tasks_on(cpus=3)
    ws = on_nodes(1, 1, 2)
    q.push(placed(("node", 2, False)))
    assert [i for i, _ in dispatch(q, ws)] == [2]
    q.push(placed(("node", 2, False)))
    assert dispatch(q, ws) == [], "node 2's worker is busy: it waits, though node 1 has idle workers"
    assert len(q.queue) == 1


def test_a_soft_node_affinity_goes_elsewhere_when_its_node_has_no_idle_worker_or_is_gone() -> None:
    q = tasks_on(cpus=3)
    ws = on_nodes(1, 2)
    busy(ws[1])
    q.push(placed(("node", 2, True)))
    assert [i for i, _ in dispatch(q, ws)] == [0]
    q.push(placed(("node", 9, True)))  # no such node
    assert [i for i, _ in dispatch(q, on_nodes(1))] == [0]


def test_spread_places_tasks_on_the_least_busy_nodes_first() -> None:
    q = tasks_on(cpus=4)
    ws = on_nodes(1, 1, 1, 2)
    for _ in range(2):
        q.push(placed(("spread",)))
    sent = dispatch(q, ws)
    assert sorted(ws[i].node for i, _ in sent) == [1, 2], "one on each node, not two on the first"
    q.push(placed(("spread",)))
    q.push(placed(("spread",)))
    sent = dispatch(q, ws)
    assert [ws[i].node for i, _ in sent] == [1, 1], "node 2 has no idle worker left: node 1's idle ones take them"


def test_plain_tasks_behind_a_placed_one_still_run_on_other_workers() -> None:
    q = tasks_on(cpus=2)
    ws = on_nodes(1, 2)
    busy(ws[1])
    q.push(placed(("node", 2, False)))
    q.push(plain_task())
    sent = dispatch(q, ws)
    assert [(i, t.strategy) for i, t in sent] == [(0, None)], "the plain task is not held up by the placed one"


# -- several nodes: a task fits a node, not the cluster ---------------------------------------


def nodes_queue() -> TaskQueue:
    """Node 1 (the head's host, 1 CPU), node 2 (2 CPUs, 1 GPU, zone a)."""
    r = Resources(1, node=1)
    r.add_node(2, {"CPU": 2, "GPU": 1}, {"zone": "a"})
    return TaskQueue(r, CONFIG)


def test_a_task_goes_to_the_node_that_has_what_it_needs() -> None:
    q = nodes_queue()
    ws = on_nodes(1, 2, 2)
    q.push(special_task({"CPU": 1.0, "GPU": 1.0}))
    q.push(special_task({"CPU": 2.0}))
    sent = dispatch(q, ws)
    assert [ws[i].node for i, _ in sent] == [2], "the GPU task on node 2; the 2-CPU one fits no node now (1 + 1 free)"
    assert q.resources.pools[2].used["GPU"] == 1.0 and len(q.queue) == 1
    w, task = ws[sent[0][0]], sent[0][1]
    q.finished(w, task, 1.0)
    assert [ws[i].node for i, _ in dispatch(q, ws)] == [2], "node 2 has both its CPUs free again"


def test_a_plain_task_waits_for_a_node_whose_cpus_an_actor_holds() -> None:
    q = nodes_queue()
    q.resources.hold({"CPU": 1.0}, node=1)  # an actor on the head's host holds its one CPU
    ws = on_nodes(1, 2)
    q.push(plain_task())
    assert [ws[i].node for i, _ in dispatch(q, ws)] == [2], "not on node 1's idle worker: its CPU is held"


def test_a_label_selector_places_only_on_nodes_whose_labels_match() -> None:
    q = nodes_queue()
    ws = on_nodes(1, 2)
    task = special_task({"CPU": 1.0})
    task.where = lambda labels: labels.get("zone") == "a"
    q.push(task)
    assert [ws[i].node for i, _ in dispatch(q, ws)] == [2]


def test_a_queued_task_says_why_it_waits_and_fails_once_no_node_could_run_it() -> None:
    q = nodes_queue()
    ws = on_nodes(1, 2)
    q.resources.hold({"GPU": 1.0}, node=2)  # an actor holds the GPU
    task = special_task({"CPU": 1.0, "GPU": 1.0})
    q.push(task)
    assert dispatch(q, ws) == []
    assert q.why_waiting(task, ws) == "waiting for 1 CPU, 1 GPU: node 000002 has 0 GPU free"
    busy(ws[0])
    plain = plain_task()
    assert q.why_waiting(plain, ws) == "waiting for 1 CPU: node 000001 has 0 CPU free; node 000002 has no idle worker"
    assert q.never_fitting() == []
    q.resources.remove_node(2)
    assert q.never_fitting() == [task]
    assert q.why_waiting(task, ws) == "it needs 1 CPU, 1 GPU and no node alive now could ever run it"
