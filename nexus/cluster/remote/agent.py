"""A node's end of the control link: join the head, beat, rejoin when fenced, leave.

A DEALER socket, a CURVE client that knows the head's public key (from the
key file): it talks to that head only, encrypted, and the head lets it in
only if its own key is on the allow-list. A refusal is told by the
handshake (a socket monitor sees it), so ``join`` says "refused" at once
instead of waiting out its timeout.
"""

from __future__ import annotations

import contextlib
import os
import socket as _socket
import sys
import threading
import time
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from . import wire
from .keys import NodeKey

__all__ = ["HeadUnreachableError", "KeyRefusedError", "NodeLink"]

_HEAD_OPS: dict[str, dict[str, Any]] = {
    "welcome": {"node_id": int, "heartbeat": (int, float), "timeout": (int, float), "wall": (int, float)},
    "ack": {},
    "fenced": {"node_id": int, "why": str},
    "nodes": {"nodes": list, "refused": int, "malformed": int},
    "spawn": {"kind": str},
    "stop": {"why": str},
    "stacks": {},
    "draining": {"node_id": int, "state": str},
    "refused": {"why": str},
}

_AUTH_FAILED = getattr(zmq, "EVENT_HANDSHAKE_FAILED_AUTH", 0x4000)
_PROTOCOL_FAILED = getattr(zmq, "EVENT_HANDSHAKE_FAILED_PROTOCOL", 0x2000)
_NO_DETAIL = getattr(zmq, "EVENT_HANDSHAKE_FAILED_NO_DETAIL", 0x0800)


class KeyRefusedError(PermissionError):
    """The head refused this peer's key (it is not on the head's allow-list)."""


class HeadUnreachableError(ConnectionError):
    """No head answered at the address within the time allowed."""


def parse_address(address: str) -> tuple[str, int]:
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"a head's address is HOST:PORT, such as 127.0.0.1:6380, not {address!r}")
    return host.strip("[]"), int(port)


class NodeLink:
    """One authenticated connection to a head (a node agent's, or ``nexus status``'s)."""

    def __init__(self, key: NodeKey, address: str) -> None:
        host, port = parse_address(address)
        self.address = address
        self.key = key
        self.context = zmq.Context()
        sock = self.socket = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, -1)  # (data frames carry arrays; the head is authenticated by its key)
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.curve_serverkey = key.head_public.encode("ascii")
        sock.curve_publickey = key.pair.public.encode("ascii")
        sock.curve_secretkey = key.pair.secret.encode("ascii")
        self.monitor = sock.get_monitor_socket(_AUTH_FAILED | _PROTOCOL_FAILED | _NO_DETAIL)
        sock.connect(f"tcp://{host}:{port}")
        self.node_id = 0
        self.on_spawn: Any = None  # called with the kind of worker the head asks this node to start
        self.on_stop: Any = None  # called with why, when the head asks this node to leave
        self.on_stacks: Any = None  # called when the head asks for its workers' Python stacks (nexus dump)
        self.epoch = ""
        self.clock_offset = 0.0
        self.mono_offset = 0
        self.heartbeat = 0.5
        self.timeout = 5.0
        self.store: dict[str, Any] | None = None  # this node's arena, as its join tells the head
        self.allowed: list[str] = []  # the keys the head lets in (its own with them), as its welcome told

    def request(
        self, op: str, timeout: float, ops: dict[str, dict[str, Any]] | None = None, data: list[Any] | None = None, **fields: Any
    ) -> tuple[str, dict[str, Any]]:
        """Send one frame and wait for the head's answer; KeyRefusedError or HeadUnreachableError if none comes.

        ``ops``: the answers taken (the head's to a node by default); ``data``: where data frames that come
        first are kept (an attached driver's), else they are dropped.
        """
        deadline = time.monotonic() + timeout
        frame = wire.encode(op, **fields)
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLOUT)
        poller.register(self.monitor, zmq.POLLIN)
        while True:  # (a send waits while the socket has no connection to queue on: bounded by the timeout too)
            try:
                self.socket.send(frame, zmq.NOBLOCK)
                break
            except zmq.Again:
                pass
            self._unreachable_after(deadline, timeout)
            if self.monitor in dict(poller.poll(max(1, int((deadline - time.monotonic()) * 1000)))):
                self._check_refused()
        return self.receive(timeout, ops or _HEAD_OPS, data, deadline)

    def _unreachable_after(self, deadline: float, timeout: float) -> None:
        if time.monotonic() >= deadline:
            raise HeadUnreachableError(
                f"no Nexus head answered at {self.address} within {timeout:g} s: is `nexus start --head` running there, "
                "is the port open, and is the key file that head's?"
            )

    def _check_refused(self) -> None:
        """Read what the connection's monitor says: KeyRefusedError if the head refused this key."""
        event = recv_monitor_message(self.monitor)
        if event["event"] == _AUTH_FAILED:
            raise KeyRefusedError(f"the head at {self.address} refused this key ({self.key.path}): it is not on that head's allow-list")

    def receive(
        self, timeout: float, ops: dict[str, dict[str, Any]] = _HEAD_OPS, data: list[Any] | None = None, deadline: float | None = None
    ) -> tuple[str, dict[str, Any]]:
        """The head's next answer (``deadline``: when ``timeout`` began to count is not now)."""
        if deadline is None:
            deadline = time.monotonic() + timeout
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(self.monitor, zmq.POLLIN)
        while True:
            self._unreachable_after(deadline, timeout)
            events = dict(poller.poll(max(1, int((deadline - time.monotonic()) * 1000))))
            if self.monitor in events:
                self._check_refused()
            if self.socket in events:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
                if len(frames) >= 2 and frames[0] == b"D":
                    if data is not None:
                        data.append(frames)
                    continue
                try:
                    if len(frames) != 1:
                        raise ValueError(f"{len(frames)} frames")
                    asked = {name: _HEAD_OPS[name] for name in ("spawn", "stop", "stacks")}
                    op, f = wire.decode(frames[0], {**ops, **asked})
                except ValueError as exc:
                    print(f"nexus: dropped a malformed frame from the head: {exc}", file=sys.stderr)
                    continue
                if op == "spawn":  # the head asks for a worker (any time, not as an answer)
                    if self.on_spawn is not None:
                        self.on_spawn(f["kind"])
                    continue
                if op == "stacks":  # the head asks for its workers' stacks: they print them, and their output goes up
                    if self.on_stacks is not None:
                        self.on_stacks()
                    continue
                if op == "stop":  # the head asks this node to leave (it was drained)
                    if self.on_stop is not None:
                        self.on_stop(f["why"])
                    continue
                return op, f

    # -- a node's membership ---------------------------------------------------------------

    def join(self, resources: dict[str, float], labels: dict[str, str], timeout: float = 10.0, store: dict[str, Any] | None = None) -> int:
        """Join as a node (``store``: its arena's size and where its objects are served, if it has one)."""
        if store is not None:
            self.store = store
        sent, sent_mono = time.time(), time.monotonic_ns()
        deadline = time.monotonic() + timeout
        extra: dict[str, Any] = {"store": self.store} if self.store is not None else {}
        op, f = self.request(
            "join",
            timeout,
            host=_socket.gethostname(),
            pid=os.getpid(),
            resources=resources,
            labels=labels,
            wall=sent,
            mono=sent_mono,
            **extra,
        )
        while op != "welcome":  # answers to beats sent before (a link that came back delivers them late)
            op, f = self.receive(max(0.0, deadline - time.monotonic()))
        back, back_mono = time.time(), time.monotonic_ns()
        self.node_id = f["node_id"]
        self.allowed = [k for k in f.get("allowed", ()) if isinstance(k, str)]
        self.epoch = str(f.get("epoch", ""))
        self.heartbeat = float(f["heartbeat"])
        self.timeout = float(f["timeout"])
        self.clock_offset = (sent + back) / 2 - float(f["wall"])  # ours minus the head's, to within half the round trip
        mono = f.get("mono")
        if wire.is_int(mono):
            self.mono_offset = mono - (sent_mono + back_mono) // 2  # the head's minus ours, likewise
        return self.node_id

    def beat_until(
        self,
        stop: threading.Event,
        resources: dict[str, float],
        labels: dict[str, str],
        log: Any,
        rejoined: Any = None,
        tick: Any = None,
        samples: Any = None,
    ) -> None:
        """Beat every ``heartbeat`` until ``stop``; rejoin as a new node when fenced (``rejoined(node_id)``); say when
        the head is lost and back. ``samples()``, if given, is sent with a beat at most once a second: its workers'
        ``[pid, cpu percent, resident bytes]``, which the head records as theirs."""
        lost_since = 0.0
        offset_told = False
        best_trip = 1 << 62  # the shortest beat round trip so far (ns): the monotonic offset measured on it
        seq = 0  # beats are numbered: an ack that comes late (for an earlier beat) is no sample of this one's trip
        sampled = 0.0
        while not stop.wait(self.heartbeat):
            if tick is not None:
                tick()
            try:
                seq += 1
                fields: dict[str, Any] = {"node_id": self.node_id, "epoch": self.epoch, "seq": seq}
                if not offset_told:
                    fields["offset"] = self.clock_offset
                    fields["mono"] = self.mono_offset
                if samples is not None and time.monotonic() - sampled >= 1.0:
                    sampled = time.monotonic()
                    fields["procs"] = samples()
                sent = time.monotonic_ns()
                op, f = self.request("beat", max(self.heartbeat * 2, 1.0), **fields)
                back = time.monotonic_ns()
            except HeadUnreachableError:
                if not lost_since:
                    lost_since = time.monotonic()
                    log(f"nexus node {self.node_id}: the head at {self.address} does not answer; trying on")
                continue
            except KeyRefusedError as exc:
                log(f"nexus node {self.node_id}: {exc}; leaving")
                return
            if lost_since:
                log(f"nexus node {self.node_id}: the head answers again after {time.monotonic() - lost_since:.1f} s")
                lost_since = 0.0
            offset_told = True
            mono = f.get("mono") if op == "ack" and f.get("seq") == seq else None
            if wire.is_int(mono) and back - sent < best_trip:
                # NTP's way: the head's clock at the middle of the quickest round trip (the join's included the
                # link's handshake); told with the next beat
                best_trip = back - sent
                self.mono_offset = mono - (sent + back) // 2
                offset_told = False
            if op == "fenced":
                old = self.node_id
                try:
                    self.join(resources, labels)
                except HeadUnreachableError as exc:
                    log(f"nexus node {old}: fenced, and joining again failed ({exc}); trying on")
                    continue
                offset_told = False
                best_trip = 1 << 62
                log(f"nexus node {old}: the head declared it dead ({f['why']}); joined again as node {self.node_id}")
                if rejoined is not None:
                    rejoined(self.node_id)

    def report_exit(self, pid: int, code: int) -> None:
        """Tell the head that a worker of this node exited, and how (from the thread that beats; no answer)."""
        with contextlib.suppress(zmq.ZMQError):
            self.socket.send(wire.encode("exited", node_id=self.node_id, pid=pid, code=code), zmq.NOBLOCK)

    def send_output(self, pid: int, err: bool, text: str) -> None:
        """What a worker of this node printed, for the head (from the thread that beats; no answer)."""
        with contextlib.suppress(zmq.ZMQError):
            self.socket.send(wire.encode("output", node_id=self.node_id, pid=pid, err=err, text=text), zmq.NOBLOCK)

    def leave(self) -> None:
        if self.node_id:
            with contextlib.suppress(zmq.ZMQError):
                self.socket.send(wire.encode("leave", node_id=self.node_id), zmq.NOBLOCK)
                time.sleep(0.05)  # (LINGER 0: give the frame a moment to leave)

    def close(self) -> None:
        self.socket.disable_monitor()
        self.monitor.close(0)
        self.socket.close(0)
        self.context.term()
