"""The head's nodes as members of a :class:`~..services.membership.MembershipBackend`, and suspected by phi.

The head's node table (:class:`~..state.nodes.Membership`) stays the arbiter
of node numbers, fencing and death: a node not heard from for the timeout is
dead, for good. Beside it:

- every node is a member of a backend: ``"memory"`` (the head's own, the
  default) or ``"etcd://HOST:PORT[/PREFIX/]"``, where each node is a key
  under a lease with the timeout as its time to live, renewed as the node
  beats and revoked when it leaves or dies, so that other processes (an
  operator's tools, a standby) see the members and watch them change. etcd is
  spoken to on a thread of its own: the head's loop never waits for it, and
  while it cannot be reached the cluster goes on as the head sees it (said
  once, and again when it is back, when every live node joins it again);
- a phi accrual detector (:mod:`..services.phi`) over each node's beats
  says when a node is *suspected* (``phi >= threshold``, typically a second
  or two of unusual silence): the node stays a member, nothing is taken from
  it, but new virtual activations are not placed there; it is *recovered* at
  its next beat. Suspicion is quick and reversible, death slow and final.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from ..config import parse_membership
from ..services.membership import InMemoryMembership, Member, MembershipBackend
from ..services.phi import PhiAccrualDetector
from ..state.nodes import NodeRecord

__all__ = ["NodeWatch"]


class NodeWatch:
    """Keeps the backend's members and the phi detectors in step with the head's node table (its loop thread
    calls ``joined``, ``heard``, ``gone`` and ``tick``; none of them waits for the backend)."""

    def __init__(
        self, spec: str, timeout: float, heartbeat: float, threshold: float, clock: Callable[[], float], log: Callable[[str], None]
    ) -> None:
        kind, host, port, prefix = parse_membership(spec)
        if not threshold > 0:
            raise ValueError(f"the phi threshold is a positive number, not {threshold!r}")
        self.spec, self.timeout, self.heartbeat, self.threshold = spec, timeout, heartbeat, threshold
        self.clock, self.log = clock, log
        self.detectors: dict[int, PhiAccrualDetector] = {}
        self.joined_as: dict[str, Member] = {}  # what each node joined the backend as (to join again if it expired it)
        self.suspicions = 0  # nodes suspected so far (a node suspected twice counts twice)
        self.backend: MembershipBackend
        self.ops: queue.SimpleQueue[tuple[str, Any] | None] | None = None
        self.thread: threading.Thread | None = None
        self.error = ""  # why the backend cannot be reached now ("": it can)
        self.renewing = False  # a round of renewals is queued for the backend's thread
        if kind == "memory":
            self.backend = InMemoryMembership(clock, threshold)
        else:
            from ..services.etcd import EtcdMembership

            self.backend = EtcdMembership(host, port, prefix, timeout=max(1.0, heartbeat * 2))
            self.ops = queue.SimpleQueue()
            self.thread = threading.Thread(target=self._serve, name="nexus-head-membership", daemon=True)
            self.thread.start()

    # -- the head's loop thread ----------------------------------------------------------------

    def joined(self, record: NodeRecord) -> None:
        detector = self.detectors[record.node_id] = PhiAccrualDetector(threshold=self.threshold, first_interval=self.heartbeat)
        detector.heartbeat(self.clock())
        member = self.joined_as[str(record.node_id)] = _member(record)
        self._do("join", member)

    def heard(self, record: NodeRecord) -> None:
        detector = self.detectors.get(record.node_id)
        if detector is not None:
            detector.heartbeat(self.clock())
        if record.suspected:
            record.suspected = False
            self.log(f"nexus head: node {record.node_id} ({record.host}) is heard again: no longer suspected")
        if self.ops is None:
            self._do("renew", str(record.node_id))

    def gone(self, record: NodeRecord) -> None:
        self.detectors.pop(record.node_id, None)
        self.joined_as.pop(str(record.node_id), None)
        record.suspected = False
        self._do("leave", str(record.node_id))

    def tick(self, records: list[NodeRecord]) -> None:
        """Suspect the live nodes whose silence phi finds unusual (``records``: every node, the head's own too);
        in memory, expire the members; in etcd, renew their leases."""
        now = self.clock()
        for record in records:
            detector = self.detectors.get(record.node_id)
            if record.info.get("head"):
                continue  # (the head's own node: it does not beat, it is here)
            if record.alive and not record.suspected and detector is not None and detector.suspected(now):
                record.suspected = True
                self.suspicions += 1
                self.log(
                    f"nexus head: node {record.node_id} ({record.host}) is suspected: phi {detector.phi(now):.1f} "
                    f"after {now - (detector.last or now):.2f} s without a beat (dead after {self.timeout:g} s)"
                )
        if isinstance(self.backend, InMemoryMembership):
            self.backend.tick()
        elif self.ops is not None and not self.renewing:  # (one round queued at a time: etcd may be slow to answer)
            self.renewing = True
            self.ops.put(("renew_all", [str(r.node_id) for r in records if r.alive and not r.suspected]))

    def phi(self, node: int) -> float:
        detector = self.detectors.get(node)
        return detector.phi(self.clock()) if detector is not None else 0.0

    def members(self) -> list[Member]:
        return self.backend.members()

    def close(self) -> None:
        if self.ops is not None and self.thread is not None:
            self.ops.put(None)
            self.thread.join(5)
        self.backend.close()

    def _do(self, op: str, arg: Any) -> None:
        if self.ops is not None:
            self.ops.put((op, arg))
            return
        try:
            self._apply(op, arg)
        except LookupError:  # (in memory: a member it expired a moment before the table would have: it joins again)
            if op == "renew" and arg in self.joined_as:
                self._apply("join", self.joined_as[arg])

    # -- the backend's thread (etcd) -------------------------------------------------------------

    def _serve(self) -> None:
        assert self.ops is not None
        joined: dict[str, Member] = {}  # what this head made members (to join again after etcd was away)
        renewed: dict[str, float] = {}
        while True:
            item = self.ops.get()
            if item is None:
                return
            op, arg = item
            touched = op != "renew_all"  # (whether etcd answered an operation: a round with no lease due says nothing)
            try:
                if op == "join":
                    joined[arg.node] = arg
                    self._apply("join", arg)
                elif op == "leave":
                    joined.pop(arg, None)
                    renewed.pop(arg, None)
                    self._apply("leave", arg)
                elif op == "renew_all":  # (each lease at most every heartbeat: a tick comes more often)
                    self.renewing = False
                    now = time.monotonic()
                    for node in arg:
                        if node in joined and now - renewed.get(node, 0.0) >= self.heartbeat:
                            renewed[node] = now
                            touched = True
                            try:
                                self._apply("renew", node)
                            except LookupError:  # its lease ran out (etcd was away longer than the timeout)
                                self._apply("join", joined[node])
                if self.error and touched:
                    self.log(f"nexus head: membership in {self.spec} is reachable again: the live nodes join it again")
                    self.error = ""
                    for member in list(joined.values()):
                        self._apply("join", member)
            except (ConnectionError, OSError) as exc:
                if not self.error:
                    self.log(f"nexus head: membership in {self.spec} cannot be reached ({exc}); the nodes go on as this head sees them")
                self.error = str(exc)
            except Exception as exc:  # (a defect, or a reply of an unexpected shape: said, and on)
                self.log(f"nexus head: membership in {self.spec}: {op} failed: {exc!r}")

    def _apply(self, op: str, arg: Any) -> None:
        if op == "join":
            self.backend.join(arg, self.timeout)
        elif op == "renew":
            self.backend.renew(arg)
        elif op == "leave":
            self.backend.leave(arg)


def _member(record: NodeRecord) -> Member:
    return Member(str(record.node_id), record.host, dict(record.labels))
