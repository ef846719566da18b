"""A task worker of a joined node, attached to the head over the network (``python -m nexus.cluster.remote.worker``).

The node agent starts one per CPU it offers. Each runs the ordinary worker
loop (:class:`~nexus.cluster.worker.WorkerRuntime`) on a :class:`PeerChannel`:
a DEALER socket, a CURVE client with the node's key, whose messages carry
large buffers as frames of their own. It maps no arena (values travel with
their bytes), beats from a thread of its own, and exits when the head stops
answering or its agent dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import zmq

from ..config import ClusterConfig
from ..protocol import pack_frames
from ..transport import Connection, Message, TransportClosedError
from . import wire
from .agent import NodeLink
from .keys import load_node_key

__all__ = ["PeerChannel", "main"]

_ATTACHED: dict[str, dict[str, Any]] = {
    "attached": {"worker_id": int, "node": int, "config": str},
    "refused": {"why": str},
    "ack": {},
    "fenced": {"node_id": int, "why": str},
}


class PeerChannel(Connection):
    """A worker's channel to the head across hosts: data frames ``[b"D", envelope, *buffers]``, control frames JSON."""

    encode = staticmethod(pack_frames)  # how the worker packs what it sends on this channel

    def __init__(self, link: NodeLink) -> None:
        self.link = link
        self._socket = link.socket
        self._lock = threading.Lock()
        self._fd: int = self._socket.getsockopt(zmq.FD)  # type: ignore[assignment]
        self._closed = False
        self.last_heard = time.monotonic()
        self.fenced = ""

    def send(self, data: Any, frames: Sequence[Any] = ()) -> None:
        parts = [b"D", *data] if isinstance(data, list) else [b"D", data, *frames]
        with self._lock:
            if self._closed:
                raise TransportClosedError("the channel is closed")
            self._socket.send_multipart(parts, copy=False)

    def control(self, op: str, **fields: Any) -> None:
        with self._lock:
            if not self._closed:
                self._socket.send(wire.encode(op, **fields), zmq.NOBLOCK)

    def try_recv(self) -> Message | None:
        while True:
            with self._lock:
                if self._closed:
                    return None
                try:
                    frames = self._socket.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    return None
            self.last_heard = time.monotonic()
            if len(frames) >= 2 and frames[0].bytes == b"D":
                return frames[1].bytes, [f.buffer for f in frames[2:]]
            if len(frames) == 1:  # an answer to a beat
                with contextlib.suppress(ValueError):
                    op, f = wire.decode(frames[0].bytes, _ATTACHED)
                    if op == "fenced":
                        self.fenced = f["why"]

    def fileno(self) -> int:
        return self._fd

    def park_begin(self) -> bool:
        with self._lock:
            if self._closed:
                return True
            return not (int(self._socket.getsockopt(zmq.EVENTS)) & zmq.POLLIN)  # type: ignore[arg-type]

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
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
    args = parser.parse_args(argv)
    _die_with_parent()
    if os.getppid() != args.agent:
        return 1  # the agent died before the kernel could be told to kill us with it
    link = NodeLink(load_node_key(args.key), args.address)
    try:
        op, f = link.request("attach", 10.0, ops=_ATTACHED, host=os.uname().nodename, pid=os.getpid(), kind="task", node_id=args.node)
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
    from .. import session
    from ..values import set_client
    from ..worker import WorkerRuntime
    from ..worker.store_client import _WorkerStore

    channel = PeerChannel(link)
    runtime = WorkerRuntime(channel, f["worker_id"], "task", None, config)
    session.set_current(runtime)
    set_client(_WorkerStore(runtime, None))

    def beat() -> None:
        while True:
            time.sleep(heartbeat)
            channel.control("peer_beat", worker_id=f["worker_id"])
            if channel.fenced or time.monotonic() - channel.last_heard > timeout:
                os._exit(3)  # the head let this worker go, or is gone: what ran here is retried elsewhere

    threading.Thread(target=beat, name="nexus-beat", daemon=True).start()
    try:
        runtime.serve()
    finally:
        set_client(None)
        with contextlib.suppress(Exception):
            channel.close()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
