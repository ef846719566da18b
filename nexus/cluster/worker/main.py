"""A worker process's start: its channel read from the bootstrap pipe, its runtime made and run until told to exit."""

from __future__ import annotations

import faulthandler
import os
import signal
import sys

from .. import session
from ..config import ClusterConfig
from ..transport import ChannelSpec, load_transport
from ..values import set_client
from .actors import _set_policy
from .loop import WorkerRuntime
from .store_client import _WorkerStore

__all__ = ["main"]


def _read_bootstrap(fd: int) -> str:
    """What the driver wrote to the pipe this process inherited (its channel, with any secret): read to the end."""
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode()


# (SIGURG: ignored by default, so a worker still starting, before it registers this, is not killed by it;
# SIGUSR1 cancels the running task)
STACKS_SIGNAL = signal.SIGURG


def prepare_process(config: ClusterConfig) -> None:
    """What a worker process sets before it serves (on this host or a joined node's)."""
    # Tasks that arrive while one waits in get() run on top of it, ~8 frames each: room for ~700 of them. Deeper
    # nesting fails the task that does not fit with a RecursionError (see _next_task) instead of hanging.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 6000))
    _set_policy(batch=config.sched_batch)
    # STACKS_SIGNAL prints every thread's Python stack to stderr, even while one holds the GIL in C (``nexus dump``):
    # the line goes to the driver or head that reads this worker's stderr, named by worker
    faulthandler.register(STACKS_SIGNAL, file=sys.stderr, all_threads=True)


def become(runtime: WorkerRuntime) -> None:
    """This process is ``runtime``'s: the session of its tasks, cancelled by SIGUSR1, deaf to a terminal's Ctrl-C."""
    session.set_current(runtime)
    signal.signal(signal.SIGUSR1, runtime._on_cancel_signal)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal reaches the whole group: the driver decides


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    worker_id, kind, bootstrap_fd, death_fd = int(argv[0]), argv[1], int(argv[2]), int(argv[3])
    spec_text, _, config_text = _read_bootstrap(bootstrap_fd).partition("\n")
    spec = ChannelSpec.decode(spec_text)
    config = ClusterConfig.from_json(config_text) if config_text else ClusterConfig()
    prepare_process(config)
    conn = load_transport(spec.transport, os.environ.get("NEXUS_TRANSPORT_CLASS")).attach(spec)
    runtime = WorkerRuntime(conn, worker_id, kind, death_fd if death_fd >= 0 else None, config)
    become(runtime)
    set_client(_WorkerStore(runtime, os.environ.get("NEXUS_ARENA")))
    try:
        runtime.serve()
    except KeyboardInterrupt:
        pass
    finally:
        set_client(None)
        try:
            conn.close()
        except Exception:
            pass
    os._exit(0)  # do not wait for actor threads or run atexit hooks of user code: the driver decides our fate
