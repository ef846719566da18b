"""Where an identity lives (a virtual actor's node): ``PlacementStrategy`` and the strategies that come with Nexus.

A strategy is told the members (``set_nodes``) and answers ``owner(identity)``.
The hashing ones are functions of the identity and the members alone, the
same in every process (BLAKE2b, not Python's salted ``hash``), so any node can
say where an identity belongs without asking:

- ``consistent_hash``: a ring with ``vnodes`` points per node (Karger et al.,
  1997); a member that joins or leaves moves about 1/n of the identities.
- ``rendezvous``: highest random weight (Thaler and Ravishankar, 1998); the
  same minimal movement without a ring, at O(n) per lookup.
- ``static``: a fixed table of ``partitions`` (an identity's partition is its
  hash modulo that), for setups whose memory per node is bounded: each node
  holds its share (the partitions divided by the members, give or take one);
  a member that leaves gives its partitions to the others, one that joins
  takes only what the others hold over their new share.

and the load-based ones, as Ray's strategies, which decide rather than
compute (the directory records their choice): ``spread`` (the node with the
fewest identities) and ``pack`` (the fullest node that has room under
``capacity``). Others are plugins: a class in the ``nexus.placement``
entry-point group, found by :func:`load_strategy`.
"""

from __future__ import annotations

import abc
import bisect
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

__all__ = [
    "ENTRY_POINT_GROUP",
    "ConsistentHash",
    "Pack",
    "PlacementStrategy",
    "Rendezvous",
    "Spread",
    "StaticPartition",
    "available_strategies",
    "load_strategy",
    "stable_hash",
]

ENTRY_POINT_GROUP = "nexus.placement"


def stable_hash(*parts: str) -> int:
    """A 64-bit hash of ``parts``, the same in every process and on every run."""
    return int.from_bytes(hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest(), "big")


class PlacementStrategy(abc.ABC):
    """Members in, the owner of an identity out."""

    name: ClassVar[str] = ""

    def __init__(self) -> None:
        self.nodes: tuple[str, ...] = ()

    def set_nodes(self, nodes: Iterable[str]) -> None:
        """The members now (node ids); the strategy keeps what it needs to answer ``owner``."""
        self.nodes = tuple(sorted(set(nodes)))

    @abc.abstractmethod
    def owner(self, identity: str) -> str:
        """The node ``identity`` lives on; LookupError when there are no members."""

    def placed(self, identity: str, node: str) -> None:  # noqa: B027  (a hook for load-based strategies)
        """``identity`` was activated on ``node`` (load-based strategies count)."""

    def removed(self, identity: str, node: str) -> None:  # noqa: B027
        """``identity`` was passivated from ``node``."""

    def _none(self) -> LookupError:
        return LookupError(f"the {self.name} strategy has no member nodes to place an identity on")


class ConsistentHash(PlacementStrategy):
    name = "consistent_hash"

    def __init__(self, vnodes: int = 160) -> None:
        super().__init__()
        if vnodes < 1:
            raise ValueError(f"consistent_hash needs at least one point per node, not vnodes={vnodes}")
        self.vnodes = vnodes
        self.points: list[int] = []
        self.owners: list[str] = []

    def set_nodes(self, nodes: Iterable[str]) -> None:
        super().set_nodes(nodes)
        ring = sorted((stable_hash(node, str(i)), node) for node in self.nodes for i in range(self.vnodes))
        self.points = [point for point, _ in ring]
        self.owners = [node for _, node in ring]

    def owner(self, identity: str) -> str:
        if not self.points:
            raise self._none()
        at = bisect.bisect(self.points, stable_hash(identity)) % len(self.points)
        return self.owners[at]


class Rendezvous(PlacementStrategy):
    name = "rendezvous"

    def owner(self, identity: str) -> str:
        if not self.nodes:
            raise self._none()
        return max(self.nodes, key=lambda node: stable_hash(node, identity))


class StaticPartition(PlacementStrategy):
    name = "static"

    def __init__(self, partitions: int = 256, table: Mapping[int, str] | None = None) -> None:
        super().__init__()
        if partitions < 1:
            raise ValueError(f"static placement needs at least one partition, not {partitions}")
        self.partitions = partitions
        self.table: dict[int, str] = dict(table or {})
        if any(not 0 <= p < partitions for p in self.table):
            raise ValueError(f"a static table maps partitions 0..{partitions - 1} to nodes, not {sorted(self.table)}")

    def set_nodes(self, nodes: Iterable[str]) -> None:
        super().set_nodes(nodes)
        if not self.nodes:
            return
        members = set(self.nodes)
        counts = {node: 0 for node in self.nodes}
        orphans = []
        for partition in range(self.partitions):
            node = self.table.get(partition)
            if node in members:
                counts[node] += 1
            else:
                orphans.append(partition)  # (never given, or its node left)
        # Each node ends with base or base + 1 partitions: the ones holding most keep the extra ones, the others
        # give up what is over (to a new member, or to those below).
        base, extra = divmod(self.partitions, len(self.nodes))
        ranked = sorted(self.nodes, key=lambda n: (-counts[n], n))
        allowed = {node: base + (1 if i < extra else 0) for i, node in enumerate(ranked)}
        for node in self.nodes:
            over = counts[node] - allowed[node]
            for partition in range(self.partitions - 1, -1, -1):
                if over <= 0:
                    break
                if self.table.get(partition) == node:
                    orphans.append(partition)
                    counts[node] -= 1
                    over -= 1
        for partition in sorted(orphans):
            node = min(self.nodes, key=lambda n: (counts[n], n))
            self.table[partition] = node
            counts[node] += 1

    def partition(self, identity: str) -> int:
        return stable_hash(identity) % self.partitions

    def owner(self, identity: str) -> str:
        if not self.nodes:
            raise self._none()
        return self.table[self.partition(identity)]


class _Counted(PlacementStrategy):
    """Load-based: counts identities per node (``placed``/``removed``); ``owner`` chooses for a new one."""

    def __init__(self) -> None:
        super().__init__()
        self.load: dict[str, int] = {}

    def set_nodes(self, nodes: Iterable[str]) -> None:
        super().set_nodes(nodes)
        self.load = {node: self.load.get(node, 0) for node in self.nodes}

    def placed(self, identity: str, node: str) -> None:
        if node in self.load:
            self.load[node] += 1

    def removed(self, identity: str, node: str) -> None:
        if self.load.get(node, 0) > 0:
            self.load[node] -= 1


class Spread(_Counted):
    name = "spread"

    def owner(self, identity: str) -> str:
        if not self.nodes:
            raise self._none()
        return min(self.nodes, key=lambda node: (self.load[node], node))


class Pack(_Counted):
    name = "pack"

    def __init__(self, capacity: int = 1000) -> None:
        super().__init__()
        if capacity < 1:
            raise ValueError(f"pack needs a capacity of at least one identity a node, not {capacity}")
        self.capacity = capacity

    def owner(self, identity: str) -> str:
        if not self.nodes:
            raise self._none()
        room = [node for node in self.nodes if self.load[node] < self.capacity]
        if not room:
            return min(self.nodes, key=lambda node: (self.load[node], node))  # (all full: the least full)
        return max(room, key=lambda node: (self.load[node], node))


_BUILT_IN: dict[str, type[PlacementStrategy]] = {s.name: s for s in (ConsistentHash, Rendezvous, StaticPartition, Spread, Pack)}


def available_strategies() -> dict[str, Any]:
    """The strategies by name: the built-in ones and the ``nexus.placement`` entry points (loaded on use)."""
    from importlib import metadata

    found: dict[str, Any] = dict(_BUILT_IN)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def load_strategy(name: str, **options: Any) -> PlacementStrategy:
    """A strategy by name, made with ``options`` (``load_strategy("consistent_hash", vnodes=64)``)."""
    cls = _BUILT_IN.get(name)
    if cls is None:
        found = available_strategies()
        if name not in found:
            raise ValueError(f"unknown placement strategy {name!r}; there are: {', '.join(sorted(found))}")
        cls = found[name].load()
        if not (isinstance(cls, type) and issubclass(cls, PlacementStrategy)):
            raise TypeError(f"entry point {name!r} of {ENTRY_POINT_GROUP} is {cls!r}, not a PlacementStrategy subclass")
    try:
        return cls(**options)
    except TypeError as exc:
        raise TypeError(f"placement strategy {name!r}: {exc}") from None
