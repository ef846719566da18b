"""Plain stand-ins for what the state modules hold but never look into: blobs, and ready workers."""

from __future__ import annotations

from dataclasses import dataclass

from nexus.cluster.state.ids import IdSpace
from nexus.cluster.state.tasks import TaskRecord
from nexus.cluster.state.workers import WorkerRecord, WorkerStatus

new_id = IdSpace(node=1, process=0).new
"""Fresh ids, as the head of a node makes them."""


@dataclass
class StandInBlob:
    """A value as the state sees it: where its bytes are, the refs it holds, its id once stored, its size."""

    region: tuple[int, int] | None = None
    refs: tuple[int, ...] = ()
    oid: int = 0
    nbytes: int = 0


def ready_worker(index: int = 0) -> WorkerRecord:
    w = WorkerRecord(index, "task")
    w.to(WorkerStatus.READY)
    return w


def plain_task(fn_id: bytes = b"f", nbytes: int = 10) -> TaskRecord:
    """A task that needs one CPU and nothing else, with ``nbytes`` of inline arguments."""
    return TaskRecord(new_id(), fn_id, fn_id.decode(), StandInBlob(nbytes=nbytes), [], [])


def special_task(needs: dict[str, float], fn_id: bytes = b"g", nbytes: int = 10) -> TaskRecord:
    """A task with needs of its own (num_cpus, num_gpus, resources)."""
    return TaskRecord(new_id(), fn_id, fn_id.decode(), StandInBlob(nbytes=nbytes), [], [], needs)
