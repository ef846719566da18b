"""Membership: the nodes of a cluster, how each joined, when it was last heard from, and when it is declared dead.

A node joins with the key it authenticated with (its public CURVE key), what
it has (resources, labels) and its clock; the head gives it a node number of
its own. A node not heard from for ``timeout`` seconds is declared dead, and
dead is final: the same agent coming back (its link restored, its partition
healed) is *fenced*: its old number is never alive again, so nothing it
still says under that number is taken, and it must join again as a new node.
Times are the head's monotonic clock, passed in (no clock is read here).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Membership", "NodeRecord", "NodeStatus", "node_info"]


class NodeStatus(enum.Enum):
    ALIVE = "alive"
    DEAD = "dead"


@dataclass
class NodeRecord:
    """One node as the head knows it."""

    node_id: int
    key: str  # the public key it authenticated with (z85)
    host: str  # where it says it runs (its host name)
    resources: dict[str, float]
    labels: dict[str, str]
    joined: float  # head clock
    last_heard: float
    clock_offset: float = 0.0  # its wall clock minus the head's, estimated at join (seconds)
    mono_offset: int = 0  # the head's monotonic clock minus its own (ns): what its workers' timings are shifted by
    status: NodeStatus = NodeStatus.ALIVE
    why: str = ""  # why it died
    suspected: bool = False  # its beats' silence is unusual (phi): alive, but nothing new is placed there by choice
    draining: bool = False  # it is being drained (``nexus drain``): nothing new goes there, what can move moves
    info: dict[str, Any] = field(default_factory=dict)  # what else it said at join (pid, version)

    @property
    def alive(self) -> bool:
        return self.status is NodeStatus.ALIVE

    @property
    def state(self) -> str:
        """``"ALIVE"``, ``"SUSPECTED"``, ``"DRAINING"`` or ``"DEAD"`` (as ``nexus.nodes()`` says it)."""
        if not self.alive:
            return "DEAD"
        return "DRAINING" if self.draining else "SUSPECTED" if self.suspected else "ALIVE"

    def describe(self) -> dict[str, Any]:
        """The node as ``nexus status`` and the management port show it."""
        return {
            "node_id": self.node_id,
            "host": self.host,
            "alive": self.alive,
            "resources": self.resources,
            "labels": self.labels,
            "clock_offset": self.clock_offset,
            "mono_offset": self.mono_offset / 1e9,  # (seconds: the head's monotonic clock minus the node's)
            "why": self.why,
            "state": self.state,
            "head": bool(self.info.get("head")),
            "pid": self.info.get("pid"),
        }


class Membership:
    """The nodes of one cluster (the head's own included): joins, heartbeats, leaves, deaths."""

    def __init__(self, timeout: float, first_id: int = 1) -> None:
        if timeout <= 0:
            raise ValueError(f"a node's timeout is a positive number of seconds, not {timeout!r}")
        self.timeout = timeout
        self.nodes: dict[int, NodeRecord] = {}
        self._next_id = first_id

    def __iter__(self) -> Iterator[NodeRecord]:
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)

    def get(self, node_id: int) -> NodeRecord | None:
        return self.nodes.get(node_id)

    def join(
        self,
        key: str,
        host: str,
        resources: dict[str, float],
        labels: dict[str, str],
        now: float,
        clock_offset: float = 0.0,
        info: dict[str, Any] | None = None,
        node_id: int = 0,
    ) -> NodeRecord:
        """A node joins: always under a new number, even if its key was here before (a dead node comes back new).

        ``node_id``: the number it has already (the head's own node, whose number its ids carry).
        """
        bad = {k: v for k, v in resources.items() if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0}
        if bad:
            raise ValueError(f"a node's resources are non-negative numbers, not {bad!r}")
        if node_id:
            if node_id in self.nodes:
                raise ValueError(f"node {node_id} is a member already")
        else:
            while self._next_id in self.nodes:
                self._next_id += 1
            node_id = self._next_id
            self._next_id += 1
        record = NodeRecord(node_id, key, host, dict(resources), dict(labels), now, now, clock_offset, info=dict(info or {}))
        self.nodes[node_id] = record
        return record

    def heard(self, node_id: int, key: str, now: float) -> NodeRecord | None:
        """A node said something (a heartbeat): the record if it is alive and the key is its own, else None (fenced)."""
        record = self.nodes.get(node_id)
        if record is None or not record.alive or record.key != key:
            return None
        record.last_heard = now
        return record

    def leave(self, node_id: int, key: str, why: str = "it left") -> NodeRecord | None:
        """A node leaves on its own (``nexus stop``): dead at once, no timeout to wait."""
        record = self.nodes.get(node_id)
        if record is None or not record.alive or record.key != key:
            return None
        return self._die(record, why)

    def expire(self, now: float) -> list[NodeRecord]:
        """The nodes declared dead now: not heard from for longer than the timeout."""
        return [
            self._die(r, f"not heard from for {now - r.last_heard:.1f} s (timeout {self.timeout:g} s)")
            for r in self.nodes.values()
            if r.alive and now - r.last_heard > self.timeout
        ]

    def _die(self, record: NodeRecord, why: str) -> NodeRecord:
        record.status = NodeStatus.DEAD
        record.why = why
        return record

    def alive(self) -> list[NodeRecord]:
        return [r for r in self.nodes.values() if r.alive]

    def total_resources(self) -> dict[str, float]:
        """What the alive nodes have, summed (Ray's ``cluster_resources``)."""
        total: dict[str, float] = {}
        for record in self.alive():
            for name, amount in record.resources.items():
                total[name] = total.get(name, 0.0) + amount
        return total


def node_info(
    node_id: int, state: str, host: str, resources: dict[str, float], labels: dict[str, str], workers: int, here: str
) -> dict[str, Any]:
    """A node in ``ray.nodes()``'s form (``state``: a :attr:`NodeRecord.state`, Ray's ``Alive`` any but DEAD; ``here``:
    this host's name, whose nodes' address is loopback)."""
    alive = state != "DEAD"
    return {
        "NodeID": f"{node_id:06x}",
        "Alive": alive,
        "State": state,
        "NodeManagerAddress": host if host != here else "127.0.0.1",
        "NodeManagerHostname": host,
        "NodeName": host,
        "Resources": dict(resources),
        "Labels": dict(labels),
        "Workers": workers,
        "alive": alive,
    }
