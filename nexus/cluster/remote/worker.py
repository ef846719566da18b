"""A task worker of a joined node, attached to the head over the network (``python -m nexus.cluster.remote.worker``).

The node agent starts one per CPU it offers. Each runs the ordinary worker
loop (:class:`~nexus.cluster.worker.WorkerRuntime`) on a :class:`PeerChannel`:
a DEALER socket, a CURVE client with the node's key, whose messages carry
large buffers as frames of their own. It maps its node's arena (the agent's):
large values it makes are written there and stay there, the head told only
where they are; values on other nodes it pulls from their nodes directly
(:mod:`.objects`). It beats from a thread of its own, and exits when the head
stops answering or its agent dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections import deque
from collections.abc import Sequence
from typing import Any

from ..config import ClusterConfig
from ..protocol import pack_frames
from ..transport import Connection, Message, TransportClosedError
from . import wire
from .agent import NodeLink
from .keys import load_node_key
from .link import LinkThread

__all__ = ["PeerChannel", "main"]

_ATTACHED: dict[str, dict[str, Any]] = {
    "attached": {"worker_id": int, "node": int, "config": str},
    "refused": {"why": str},
    "ack": {},
    "fenced": {"node_id": int, "why": str},
}


class PeerChannel(Connection):
    """A worker's channel to the head across hosts: data frames ``[b"D", envelope, *buffers]``, control frames JSON.

    Its socket is its :class:`~.link.LinkThread`'s, which keeps what arrives for ``try_recv`` and beats. The
    descriptor the worker's loop parks on is an eventfd that thread sets while messages wait (the socket's own is
    edge-triggered, and another thread's send could clear it).
    """

    encode = staticmethod(pack_frames)  # how the worker packs what it sends on this channel

    def __init__(self, link: NodeLink, worker_id: int, heartbeat: float, timeout: float) -> None:
        self.link = link
        self.worker_id = worker_id
        self.inbox: deque[Message] = deque()
        self.ready_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)  # readable while the inbox has messages
        self.closed = False
        self.io = LinkThread(
            link.socket,
            heartbeat,
            timeout,
            wire.encode("peer_beat", worker_id=worker_id),
            on_data=self._arrived,
            on_control=self._control,
            on_lost=self._lost,
        )
        self.io.start()

    def _arrived(self, frames: list[Any]) -> None:
        self.inbox.append((frames[1].bytes, [f.buffer for f in frames[2:]]))
        os.eventfd_write(self.ready_fd, 1)

    def _control(self, frame: bytes) -> None:
        with contextlib.suppress(ValueError):
            op, f = wire.decode(frame, _ATTACHED)
            if op == "fenced":
                self._lost(f"the head let it go ({f['why']})")

    def _lost(self, why: str) -> None:
        print(f"nexus worker-{self.worker_id}: {why}; exiting (what ran here is retried elsewhere)", file=sys.stderr, flush=True)
        os._exit(3)

    def send(self, data: Any, frames: Sequence[Any] = ()) -> None:
        if self.closed:
            raise TransportClosedError("the channel is closed")
        self.io.send([b"D", *data] if isinstance(data, list) else [b"D", data, *frames])

    def try_recv(self) -> Message | None:
        try:
            return self.inbox.popleft()
        except IndexError:
            pass
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self.ready_fd)  # nothing waits: not readable until the thread adds more
        try:
            return self.inbox.popleft()  # (added between the two looks)
        except IndexError:
            return None

    def fileno(self) -> int:
        return self.ready_fd

    def park_begin(self) -> bool:
        return not self.inbox

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.io.close()
        self.link.close()


def _die_with_parent() -> None:
    """Ask the kernel to kill this process when the agent that started it dies (even by SIGKILL)."""
    import ctypes
    import signal

    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nexus.cluster.remote.worker")
    parser.add_argument("--address", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--node", type=int, required=True)
    parser.add_argument("--agent", type=int, required=True, help="the agent's pid (exit if it is gone already)")
    parser.add_argument("--kind", choices=("task", "actor"), default="task", help="a task worker, or a spare for an actor")
    parser.add_argument("--arena-fd", type=int, default=None, help="the node's arena (its agent's shared memory), inherited")
    args = parser.parse_args(argv)
    _die_with_parent()
    if os.getppid() != args.agent:
        return 1  # the agent died before the kernel could be told to kill us with it
    link = NodeLink(load_node_key(args.key), args.address)
    try:
        op, f = link.request("attach", 10.0, ops=_ATTACHED, host=os.uname().nodename, pid=os.getpid(), kind=args.kind, node_id=args.node)
    except Exception as exc:
        print(f"nexus worker: {exc}", file=sys.stderr, flush=True)
        link.close()
        return 2
    if op != "attached":
        print(f"nexus worker: the head did not take this worker: {f.get('why', op)}", file=sys.stderr, flush=True)
        link.close()
        return 2
    os.environ["NEXUS_NODE_ID"] = str(f["node"])  # ids this worker makes: the head's node space, its own number
    config = ClusterConfig.from_json(f["config"])
    heartbeat, timeout = float(f.get("heartbeat") or 0.5), float(f.get("timeout") or 5.0)
    from ..values import set_client
    from ..worker import WorkerRuntime
    from ..worker.main import become, prepare_process
    from ..worker.store_client import _WorkerStore
    from .objects import Puller

    prepare_process(config)
    channel = PeerChannel(link, f["worker_id"], heartbeat, timeout)
    runtime = WorkerRuntime(channel, f["worker_id"], args.kind, None, config)
    become(runtime)
    from ..store import Arena

    store = _WorkerStore(runtime, Arena.inherited(args.arena_fd) if args.arena_fd is not None else None)
    store.node = args.node  # values in this node's arena are read in place; others' are pulled from their nodes
    store.puller = Puller(link.key.pair, 2 * timeout)
    store.inline_when_full = True  # (this node's arena full: a value goes to the head with its bytes)
    set_client(store)
    try:
        runtime.serve()
    finally:
        set_client(None)
        with contextlib.suppress(Exception):
            store.puller.close()
        with contextlib.suppress(Exception):
            channel.close()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
