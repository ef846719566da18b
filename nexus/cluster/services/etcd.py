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
import secrets
import threading
from collections.abc import Callable
from typing import Any

from .membership import Member, MemberEvent, member_from

__all__ = ["EtcdClaims", "EtcdMembership"]


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
        return _reached(self.where, what, run)

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


class EtcdClaims:
    """Virtual actors' activations claimed in etcd: a key ``<prefix><kind>/<identity>`` for each, created only
    where there is none (a transaction comparing its create revision with 0), its value the claimant's token and
    the activation's actor name, under a lease of the claimant's that it renews (:meth:`renew`). A claimant that
    dies lets its claims go when its lease runs out. Blocking (HTTP): the directory calls it from its executor.
    ``ConnectionError`` when etcd cannot be reached."""

    def __init__(self, host: str = "127.0.0.1", port: int = 2379, prefix: str = "/nexus/activations/", ttl: float = 10.0) -> None:
        from etcd3gw.client import Etcd3Client

        self.client = Etcd3Client(host=host, port=port, timeout=max(1.0, ttl / 5))
        self.where = f"etcd at {host}:{port}"
        self.prefix, self.ttl = prefix, ttl
        self.owner = secrets.token_hex(8)  # this claimant (a directory's run)
        self.lease: Any = None
        self.lock = threading.Lock()  # (claims are made from several threads at once: one lease for them all)

    def call(self, what: str, run: Callable[[], Any]) -> Any:
        return _reached(self.where, what, run)

    def claim(self, key: str, name: str) -> str:
        """Claim ``key`` for activation ``name``: "" if it is this claimant's now (made, or its already), else the
        token of the claimant that holds it."""
        lease = self._lease()
        value = json.dumps({"owner": self.owner, "name": name})
        path = self.prefix + key
        for _ in range(3):  # (a claim that goes between the create and the read: try again)
            try:
                made = self.call("claim", lambda: self.client.create(path, value, lease=lease))
            except ConnectionError:
                raise
            except Exception:  # (etcd refused it: most likely the lease is gone; a new one next time)
                with self.lock:
                    if self.lease is lease:
                        self.lease = None
                raise
            if made:
                return ""
            rows = self.call("claim", lambda: self.client.get(path))
            if rows:
                try:
                    owner = str(json.loads(_text(rows[0])).get("owner", "?"))
                except (ValueError, AttributeError):
                    owner = "?"  # (a stranger's key under our prefix: it holds it all the same)
                return "" if owner == self.owner else owner
        return "?"

    def _lease(self) -> Any:
        with self.lock:
            if self.lease is None:
                self.lease = self.call("claim", lambda: self.client.lease(max(1, math.ceil(self.ttl))))
            return self.lease

    def release(self, key: str) -> None:
        self.call("release", lambda: self.client.delete(self.prefix + key))

    def renew(self) -> bool:
        """Keep this claimant's lease alive; False if etcd no longer had it (its claims are gone: claim again)."""
        with self.lock:
            lease = self.lease
        if lease is None:
            return True
        ttl = self.call("renew", lease.refresh)
        if ttl is None or int(ttl) <= 0:
            with self.lock:
                if self.lease is lease:
                    self.lease = None
            return False
        return True

    def claims(self) -> dict[str, str]:
        """Every claim now: key -> the claimant's token."""
        out = {}
        for value, meta in self.call("claims", lambda: self.client.get_prefix(self.prefix)):
            try:
                out[_text(meta["key"])[len(self.prefix) :]] = str(json.loads(_text(value)).get("owner", "?"))
            except (ValueError, KeyError, AttributeError):
                continue
        return out

    def close(self) -> None:
        if self.lease is not None:
            try:
                self.call("close", self.lease.revoke)  # (its claims go now, not when the lease runs out)
            except ConnectionError:
                pass
        self.client.session.close()


def _reached(where: str, what: str, run: Callable[[], Any]) -> Any:
    """``run()``, etcd3gw's errors of an etcd it cannot reach as a ConnectionError that says so."""
    from etcd3gw import exceptions

    try:
        return run()
    except (exceptions.ConnectionFailedError, exceptions.ConnectionTimeoutError) as exc:
        detail = " ".join(str(exc.detail_text or exc or type(exc).__name__).split())[:300]  # (its text is in detail_text)
        raise ConnectionError(f"{what}: {where} cannot be reached ({detail})") from None


def _prefix_end(prefix: str) -> str:
    """The end of the key range that ``prefix`` starts (etcd's convention: the prefix with its last byte plus one)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
