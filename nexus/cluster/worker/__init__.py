"""A worker process: runs tasks, or hosts one actor, for the driver that started it.

Started as ``python -m nexus.cluster.worker <worker-id> <kind> <bootstrap-fd> <death-fd>``
by the driver, never forked from it (a notebook kernel has threads); the
channel to attach to (with its secrets) arrives on the inherited bootstrap
pipe, never on the command line, which every local user can read. The
main thread receives from the driver's channel and runs what arrives; a task
or method that calls ``get`` keeps receiving while it waits, runs tasks that
arrive meanwhile on top of its stack (so nested work never deadlocks a small
pool) and queues actor calls until the current one returns (so an actor
never runs two calls at once unless ``max_concurrency`` says so). The
worker exits when the driver says so, or when the driver dies (the read end
of a pipe only the driver holds becomes readable).

The modules, each importing only those above it here:

- ``answers``: answers and ref changes held back to go several in one message, and their watchdog.
- ``execution``: how a task runs (arguments, call, results, its outcome answered).
- ``actors``: hosting the actor: its calls in order, on a thread pool or on an event loop.
- ``client``: what user code in the worker calls (``.remote()``, ``get``, ``put``, ``wait``, control requests).
- ``loop``: ``WorkerRuntime``, made of the parts above: receiving, the async actor's loop, the monitor
  thread, cancellation and revocation, waiting for the driver's answers.
- ``store_client``: the object store as the worker sees it.
- ``main``: the process's start (the bootstrap pipe, the scheduling policy); ``__main__`` runs it.
"""

from .loop import WorkerRuntime
from .main import main

__all__ = ["WorkerRuntime", "main"]
