"""Lineage: the tasks that made values now stored only on joined nodes, kept to make those values again.

A task that ends well on a joined node's worker, with retries left
(``max_retries``), and whose results stay in that node's arena, is kept with
what it needs to run again: its arguments and the objects it was given stay
held. Once every result it kept is freed, so are they. When the node is lost,
each value kept so is made pending again and its task is queued again, as a
retry (it waits first for arguments lost with the same node, which are made
again the same way); values no task can make again are lost, and say where
they were. Everything here runs with the head's lock held.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..state.groups import group_in
from ..state.objects import ObjectEntry
from ..state.tasks import TaskRecord
from ..state.workers import WorkerRecord

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["Lineage"]


class Lineage:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.by_object: dict[int, TaskRecord] = {}  # a kept value, and the task that makes it again

    def keep(self, w: WorkerRecord, task: TaskRecord) -> bool:
        """Whether ``task``, which ended well on ``w``, is kept for its results on ``w``'s node (it keeps holding
        its arguments then)."""
        if task.retries == 0 or not w.remote or self.rt.closing:
            return False
        entries = self.rt.objects.entries
        kept = [oid for oid in task.result_ids if (e := entries.get(oid)) is not None and e.blob is not None and e.blob.at is not None]
        if not kept:
            return False
        for oid in kept:
            self.by_object[oid] = task
        task.kept = len(kept)
        return True

    def freed(self, oid: int) -> None:
        """Object ``oid`` was freed: its task, once it keeps no other result, lets its arguments go."""
        task = self.by_object.pop(oid, None)
        if task is None:
            return
        task.kept -= 1
        if task.kept <= 0:
            objects = self.rt.objects
            objects.unpin(task.deps)
            objects.decref(task.args_oid)
            task.args_oid = 0

    def make_again(self, oid: int, entry: ObjectEntry, node: int) -> TaskRecord | None:
        """The value of ``oid`` was lost with ``node``: pending again, and the task that makes it, if one was kept
        with retries left and may run elsewhere (else None: it is lost)."""
        task = self.by_object.get(oid)
        if task is None or task.retries == 0:
            return None
        strategy = task.strategy
        if strategy is not None and strategy[0] == "node" and strategy[1] == node and not strategy[2]:
            return None  # bound to that node (a hard affinity): it cannot run anywhere now
        group = group_in(task.needs)
        if group and self.rt.scheduler.groups.gone(group):
            return None  # (its placement group was removed: nowhere holds what it needs; the value is lost, said so)
        table = self.rt.objects.table
        entry.blob = None
        entry.region = None
        contained, entry.contained = entry.contained, ()
        for inner in contained:  # (counted again when the value is stored again)
            table.change(inner, -1, 0)
        return task

    def run_again(self, task: TaskRecord, why: str) -> None:
        """Queue ``task`` again for the values lost (see make_again); it holds its arguments still."""
        for oid in task.result_ids:
            self.by_object.pop(oid, None)
        task.kept = 0
        task.worker = None
        scheduler = self.rt.scheduler
        scheduler.count_retry(task, why)
        ids = [*task.deps, task.args_oid] if task.args_oid else list(task.deps)
        if self.rt.objects.table.watch(ids, task, len(ids)):
            scheduler.tasks.waiting[task.task_id] = task  # (queued once they are made again: _args_made)
        else:
            scheduler.tasks.push(task)
