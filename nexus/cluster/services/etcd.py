"""Membership in etcd (3.4+, through its JSON gateway, with the etcd3gw client): for clusters that outgrow one head.

Each member is a key ``<prefix><node>`` whose value is the member as JSON
(never a pickle: another process wrote it), attached to a lease with the
member's time to live; ``renew`` keeps the lease alive, ``leave`` revokes it,
and a member that does neither is removed by etcd itself when its lease runs
out. A watch on the prefix tells every backend in every process what
changed: ``joined`` for a new key, ``left`` for a key gone (etcd does not say
whether it was revoked or expired). If etcd cannot be reached, each
operation raises ``ConnectionError`` saying so; a lease etcd no longer has
(it expired while unreachable) makes ``renew`` raise ``LookupError``: the
member must join again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from .membership import Member, MemberEvent, member_from

__all__ = ["EtcdMembership"]


class EtcdMembership:
    def __init__(self, host: str = "127.0.0.1", port: int = 2379, prefix: str = "/nexus/members/", timeout: float = 5.0) -> None:
        from etcd3gw.client import Etcd3Client

        if not prefix.endswith("/"):
            raise ValueError(f"a members' prefix ends with '/', not {prefix!r}")
        self.client = Etcd3Client(host=host, port=port, timeout=timeout)
        self.where = f"etcd at {host}:{port}"
        self.prefix = prefix
        self.leases: dict[str, Any] = {}
        self.cancels: list[Callable[[], None]] = []

    def _call(self, what: str, run: Callable[[], Any]) -> Any:
        from etcd3gw import exceptions

        try:
            return run()
        except (exceptions.ConnectionFailedError, exceptions.ConnectionTimeoutError) as exc:
            raise ConnectionError(f"{what}: {self.where} cannot be reached ({exc})") from None

    def join(self, member: Member, ttl: float) -> None:
        if not ttl > 0:
            raise ValueError(f"a member's time to live is a positive number of seconds, not {ttl!r}")
        value = json.dumps({"node": member.node, "address": member.address, "labels": member.labels})
        lease = self._call("join", lambda: self.client.lease(max(1, math.ceil(ttl))))
        self._call("join", lambda: self.client.put(self.prefix + member.node, value, lease=lease))
        old = self.leases.pop(member.node, None)
        self.leases[member.node] = lease
        if old is not None:
            self._call("join", old.revoke)

    def renew(self, node: str) -> None:
        lease = self.leases.get(node)
        if lease is None:
            raise LookupError(f"{node} has not joined through this backend")
        ttl = self._call("renew", lease.refresh)
        if ttl is None or int(ttl) <= 0:
            del self.leases[node]
            raise LookupError(f"{node}'s lease is gone from {self.where} (it expired): it must join again")

    def leave(self, node: str) -> None:
        lease = self.leases.pop(node, None)
        if lease is not None:
            self._call("leave", lease.revoke)
        else:
            self._call("leave", lambda: self.client.delete(self.prefix + node))

    def members(self) -> list[Member]:
        rows = self._call("members", lambda: self.client.get_prefix(self.prefix))
        out = []
        for value, _meta in rows:
            try:
                out.append(member_from(json.loads(value)))
            except (ValueError, TypeError):  # (a stranger's key under our prefix: not a member)
                continue
        return out

    def watch(self, callback: Callable[[MemberEvent], None]) -> Callable[[], None]:
        from etcd3gw.watch import Watcher

        def on_event(event: Any) -> None:  # (on etcd3gw's reading thread)
            kv = event.get("kv", {})
            node = _text(kv.get("key", b""))[len(self.prefix) :]
            try:
                if event.get("type") == "DELETE":
                    callback(MemberEvent("left", Member(node)))
                elif kv.get("version") in (1, "1"):  # (a key's first version: it joined; later ones re-join)
                    callback(MemberEvent("joined", member_from(json.loads(_text(kv.get("value", b""))))))
            except Exception:  # (a record that is not a member, or the watcher's own bug: the watch goes on)
                pass

        watcher = self._call("watch", lambda: Watcher(self.client, self.prefix, on_event, range_end=_prefix_end(self.prefix)))

        def stop() -> None:
            watcher.stop()
            response = getattr(watcher, "_response", None)  # (stop shuts its socket down but leaves it unclosed)
            if response is not None:
                response.close()

        self.cancels.append(stop)
        return stop

    def close(self) -> None:
        for cancel in self.cancels:
            try:
                cancel()
            except Exception:
                pass
        self.cancels.clear()
        self.client.session.close()  # (its pooled HTTP connections: not left for the collector to find open)


def _prefix_end(prefix: str) -> str:
    """The end of the key range that ``prefix`` starts (etcd's convention: the prefix with its last byte plus one)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
