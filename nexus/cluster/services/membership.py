"""Membership: who is in the cluster, as a ``MembershipBackend`` (join, leave, renew, members, watch).

A member joins with a time to live; it renews before that runs out (its
heartbeat), leaves when it stops, and is expired when it does neither. A
watcher hears each change as a :class:`MemberEvent` (``joined``, ``left``,
``expired``, and, from the phi accrual detector, ``suspected`` and
``recovered`` before a member expires). Two backends: :class:`InMemoryMembership`
(the head's own, the default; the caller passes the time) and
:class:`~.etcd.EtcdMembership` (leases, a watch on the members' prefix) for
clusters that outgrow one head.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .phi import PhiAccrualDetector

__all__ = ["InMemoryMembership", "Member", "MemberEvent", "MembershipBackend"]


@dataclass(frozen=True)
class Member:
    node: str
    address: str = ""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MemberEvent:
    kind: str  # "joined", "left", "expired", "suspected", "recovered"
    member: Member


class MembershipBackend(Protocol):
    def join(self, member: Member, ttl: float) -> None: ...
    def renew(self, node: str) -> None: ...
    def leave(self, node: str) -> None: ...
    def members(self) -> list[Member]: ...
    def watch(self, callback: Callable[[MemberEvent], None]) -> Callable[[], None]: ...  # returns: stop watching
    def close(self) -> None: ...


@dataclass
class _Entry:
    member: Member
    ttl: float
    renewed: float
    detector: PhiAccrualDetector
    suspected: bool = False


class InMemoryMembership:
    """Members in one process (the head's). ``clock`` says the time; :meth:`tick` expires and suspects."""

    def __init__(self, clock: Callable[[], float], threshold: float = 8.0) -> None:
        self.clock, self.threshold = clock, threshold
        self.entries: dict[str, _Entry] = {}
        self.watchers: list[Callable[[MemberEvent], None]] = []
        self.lock = threading.Lock()

    def join(self, member: Member, ttl: float) -> None:
        if not ttl > 0:
            raise ValueError(f"a member's time to live is a positive number of seconds, not {ttl!r}")
        now = self.clock()
        detector = PhiAccrualDetector(threshold=self.threshold, first_interval=ttl / 3)
        detector.heartbeat(now)
        with self.lock:
            again = member.node in self.entries
            self.entries[member.node] = _Entry(member, ttl, now, detector)
        if not again:
            self._tell(MemberEvent("joined", member))

    def renew(self, node: str) -> None:
        now = self.clock()
        with self.lock:
            entry = self.entries.get(node)
            if entry is None:
                raise LookupError(f"{node} is not a member (it expired or left): it must join again")
            entry.renewed = now
            entry.detector.heartbeat(now)
            recovered = entry.suspected
            entry.suspected = False
        if recovered:
            self._tell(MemberEvent("recovered", entry.member))

    def leave(self, node: str) -> None:
        with self.lock:
            entry = self.entries.pop(node, None)
        if entry is not None:
            self._tell(MemberEvent("left", entry.member))

    def members(self) -> list[Member]:
        with self.lock:
            return [e.member for e in self.entries.values()]

    def phi(self, node: str) -> float:
        with self.lock:
            entry = self.entries.get(node)
            return 0.0 if entry is None else entry.detector.phi(self.clock())

    def tick(self) -> None:
        """Expire members whose time to live ran out, and say which the detector suspects (call it often)."""
        now = self.clock()
        events = []
        with self.lock:
            for node, entry in list(self.entries.items()):
                if now - entry.renewed > entry.ttl:
                    del self.entries[node]
                    events.append(MemberEvent("expired", entry.member))
                elif not entry.suspected and entry.detector.suspected(now):
                    entry.suspected = True
                    events.append(MemberEvent("suspected", entry.member))
        for event in events:
            self._tell(event)

    def watch(self, callback: Callable[[MemberEvent], None]) -> Callable[[], None]:
        with self.lock:
            self.watchers.append(callback)

        def stop() -> None:
            with self.lock:
                if callback in self.watchers:
                    self.watchers.remove(callback)

        return stop

    def _tell(self, event: MemberEvent) -> None:
        with self.lock:
            watchers = list(self.watchers)
        for callback in watchers:
            try:
                callback(event)
            except Exception:  # (a watcher's bug must not stop the others, nor membership)
                pass

    def close(self) -> None:
        with self.lock:
            self.watchers.clear()


def member_from(data: dict[str, Any]) -> Member:
    """A member from its stored form (checked: it may come from another process)."""
    node, address, labels = data.get("node"), data.get("address", ""), data.get("labels", {})
    if not isinstance(node, str) or not node or not isinstance(address, str) or not isinstance(labels, dict):
        raise ValueError(f"not a member record: {data!r:.120}")
    return Member(node, address, {str(k): str(v) for k, v in labels.items()})
