"""The errors a call can raise, under their Nexus names and Ray's (``ray.exceptions``).

===============================  ======================================  ============================================
Ray's name                       Nexus's                                 raised when
===============================  ======================================  ============================================
``RayError``                     :class:`NexusError`                     (every error below is one)
``RayTaskError``                 :class:`TaskError`                      a task or method raised; the error is also an
                                                                         instance of what it raised (``.cause``)
``RayActorError``,               :class:`ActorDiedError`                 the actor is gone (killed, crashed, its node
``ActorDiedError``                                                       died) before or while it took the call
``WorkerCrashedError``           :class:`WorkerCrashedError`             the task's worker process died running it
``TaskCancelledError``           :class:`TaskCancelledError`             ``nexus.cancel`` stopped the task
``GetTimeoutError``              :class:`GetTimeoutError`                ``get(timeout=...)`` ran out (a TimeoutError)
``ObjectLostError``              :class:`ObjectLostError`                the value is gone and cannot be made again
``ObjectStoreFullError``         :class:`ObjectStoreFullError`           the object store has no room (a MemoryError)
``PendingCallsLimitExceeded``    :class:`PendingCallsLimitExceededError` an actor's ``max_pending_calls`` are queued
===============================  ======================================  ============================================
"""

from .cluster.failures import TaskError
from .core.errors import (
    ActorDiedError,
    GetTimeoutError,
    NexusError,
    ObjectLostError,
    ObjectStoreFullError,
    PendingCallsLimitExceededError,
    TaskCancelledError,
    WorkerCrashedError,
)

RayError = NexusError
RayTaskError = TaskError
RayActorError = ActorDiedError
PendingCallsLimitExceeded = PendingCallsLimitExceededError

__all__ = [
    "ActorDiedError",
    "GetTimeoutError",
    "NexusError",
    "ObjectLostError",
    "ObjectStoreFullError",
    "PendingCallsLimitExceeded",
    "PendingCallsLimitExceededError",
    "RayActorError",
    "RayError",
    "RayTaskError",
    "TaskCancelledError",
    "TaskError",
    "WorkerCrashedError",
]
