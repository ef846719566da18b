"""What a cluster's nodes have (CPUs, custom resources, labels) and what its tasks and actors hold on each.

One pool per node: the head's own host first, then each node that joined a
standalone head (``add_node``), gone when it dies (``remove_node``). A task
or actor is placed where its needs fit one node; "can never run" means no
node has them at all. ``total`` and ``used`` are the cluster's sums (Ray's
``cluster_resources``), kept as the pools change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Pool", "Resources", "amounts_text"]

# A node's labels against a selector (see strategies.label_selector): whether they match
Matcher = Callable[[Mapping[str, str]], bool]


def amounts_text(amounts: Mapping[str, float], used: Mapping[str, float] | None = None) -> str:
    """``amounts`` for people, sorted by name ("2 CPU, 1 GPU, 7.5 GiB memory"; with ``used``: "1 / 2 CPU, ...")."""

    def one(key: str, value: float) -> str:
        return f"{value / 2**30:.1f} GiB" if key == "memory" else f"{value:g}"

    shown = [(f"{one(k, used.get(k, 0.0))} / " if used is not None else "") + f"{one(k, v)} {k}" for k, v in sorted(amounts.items())]
    return ", ".join(shown)


class Pool:
    """One node's resources: what it has, what actors and special tasks hold, its labels.

    CPUs are special: plain tasks hold one each while they run on a worker,
    counted from the workers (see :meth:`TaskQueue.free_cpus`), so
    ``used["CPU"]`` counts only what actors and special tasks hold.
    """

    __slots__ = ("labels", "total", "used")

    def __init__(self, total: Mapping[str, float], labels: Mapping[str, str] | None = None) -> None:
        self.total: dict[str, float] = {k: float(v) for k, v in total.items()}
        self.total.setdefault("CPU", 0.0)
        self.used: dict[str, float] = dict.fromkeys(self.total, 0.0)
        self.labels: dict[str, str] = dict(labels or {})

    def can_ever_hold(self, needs: Mapping[str, float]) -> bool:
        return all(self.total.get(k, 0.0) >= v for k, v in needs.items())

    def fits(self, needs: Mapping[str, float], free_cpus: float) -> bool:
        return _fits(needs, free_cpus, self.total, self.used)


class Resources:
    """The pools by node number, and the cluster's sums."""

    __slots__ = ("freed", "local", "pools", "total", "used")

    def __init__(self, num_cpus: float, custom: Mapping[str, float] | None = None, node: int = 0) -> None:
        self.local = node  # the head's own host: the only pool of a one-host cluster
        self.pools: dict[int, Pool] = {node: Pool({"CPU": float(num_cpus), **(custom or {})})}
        self.total: dict[str, float] = dict(self.pools[node].total)
        self.used: dict[str, float] = dict.fromkeys(self.total, 0.0)
        # something may have been freed (or a node joined) since the pending placement groups were last tried: they
        # are tried again only then (trying them at every dispatch made plain tasks 2-3x slower, 20k tiny tasks)
        self.freed = False

    @property
    def multi(self) -> bool:
        """More than one node: placing asks which node, not only whether."""
        return len(self.pools) > 1

    def renumber_local(self, node: int) -> None:
        """The head's own host got its number (drawn after the pool was made)."""
        self.pools[node] = self.pools.pop(self.local)
        self.local = node

    def add_node(self, node: int, amounts: Mapping[str, float], labels: Mapping[str, str] | None = None) -> None:
        """A node joined with ``amounts`` (CPU included) and ``labels``."""
        if node in self.pools:
            self.remove_node(node)
        pool = self.pools[node] = Pool(amounts, labels)
        self.freed = True
        for key, amount in pool.total.items():
            self.total[key] = self.total.get(key, 0.0) + amount
            self.used.setdefault(key, 0.0)

    def remove_node(self, node: int) -> None:
        """A node is gone: what it has and what was held on it leave the sums (releasing there later is a no-op)."""
        pool = self.pools.pop(node, None)
        if pool is None or node == self.local:
            if pool is not None:
                self.pools[node] = pool  # the head's own host stays
            return
        for key, amount in pool.total.items():
            if "_group_" in key:  # a placement group's name (see state.groups): gone with its last pool
                self._forget(key, amount, pool.used.get(key, 0.0))
                continue
            self.total[key] -= amount
            self.used[key] -= pool.used.get(key, 0.0)

    # -- needs -------------------------------------------------------------------------------

    def needs_of(self, options: Mapping[str, Any], name: str, default_cpu: float, where: Matcher | None = None) -> dict[str, float] | None:
        """What a task or actor holds while it runs; None for a plain one-CPU task.

        ValueError when no node could ever hold it (``where``: which nodes' labels it may run on).
        """
        if not options:
            return None
        cpu = options.get("num_cpus")
        resources = dict(options.get("resources") or {})
        if options.get("num_gpus"):
            resources["GPU"] = float(options["num_gpus"])
        if options.get("memory"):  # (bytes, of the node's memory resource)
            resources["memory"] = float(options["memory"])
        if (cpu is None or cpu == default_cpu) and not resources:
            if where is not None:
                self.check_feasible({"CPU": default_cpu}, name, where)
            return None
        # None of a resource is no need at all (and must not name one the cluster lacks)
        needs = {"CPU": float(default_cpu if cpu is None else cpu), **{k: float(v) for k, v in resources.items() if v != 0}}
        for key, amount in needs.items():
            if amount < 0:
                raise ValueError(f"{name} asks for {amount} {key}: resource amounts cannot be negative")
        self.check_feasible(needs, name, where)
        return needs

    def nodes_for(self, needs: Mapping[str, float], where: Matcher | None = None) -> list[int]:
        """The nodes that could ever hold ``needs`` (and whose labels match ``where``)."""
        return [n for n, p in self.pools.items() if p.can_ever_hold(needs) and (where is None or where(p.labels))]

    def check_feasible(self, needs: Mapping[str, float], name: str, where: Matcher | None = None) -> None:
        if self.nodes_for(needs, where):
            return
        if where is not None and not any(where(p.labels) for p in self.pools.values()):
            raise ValueError(f"{name} can never run: no node has the labels it asks for (label_selector; nexus.nodes() lists their labels)")
        if not self.multi:
            key, amount = next((k, v) for k, v in needs.items() if v > self.total.get(k, 0.0))
            raise ValueError(
                f"{name} can never run: it needs {amount:g} {key} and the cluster has {self.total.get(key, 0.0):g} "
                f"(nexus.init(num_cpus=..., num_gpus=..., resources={{...}}) sets what the cluster has)"
            )
        wanted = ", ".join(f"{v:g} {k}" for k, v in needs.items() if v)
        raise ValueError(
            f"{name} can never run: it needs {wanted} on one node and no node has that "
            f"(the nodes have {'; '.join(_amounts(p.total) for p in self.pools.values())}; "
            "nexus start --num-cpus/--resources sets what a node has)"
        )

    # -- what is free, holding -------------------------------------------------------------------

    def fits(self, needs: Mapping[str, float], free_cpus: float, node: int | None = None) -> bool:
        """Whether ``needs`` fit what is free now on ``node`` (None: the cluster as one; ``free_cpus``: there)."""
        if node is None:
            return _fits(needs, free_cpus, self.total, self.used)
        pool = self.pools.get(node)
        return pool is not None and pool.fits(needs, free_cpus)

    def short_of(self, needs: Mapping[str, float], free_cpus: float, node: int | None = None) -> list[str]:
        """The resources of ``needs`` that are not free now (on ``node``, or in the cluster)."""
        total, used = (self.total, self.used) if node is None else (self.pools[node].total, self.pools[node].used)
        return [k for k, v in needs.items() if (free_cpus if k == "CPU" else total.get(k, 0.0) - used.get(k, 0.0)) < v]

    def hold(self, needs: Mapping[str, float], cpu: bool = True, node: int | None = None) -> None:
        """``needs`` are held on ``node`` (None: the head's own host)."""
        pool = self.pools.get(self.local if node is None else node)
        if pool is None:
            return  # (a node that died meanwhile: what it had is gone from the sums already)
        for key, amount in needs.items():
            if cpu or key != "CPU":
                pool.used[key] = pool.used.get(key, 0.0) + amount
                self.used[key] = self.used.get(key, 0.0) + amount

    def release(self, needs: Mapping[str, float], cpu: bool = True, node: int | None = None) -> None:
        pool = self.pools.get(self.local if node is None else node)
        if pool is None:
            return
        self.freed = True
        for key, amount in needs.items():
            if (cpu or key != "CPU") and key in pool.used:  # (a placement group's name is gone once it is removed)
                pool.used[key] -= amount
                self.used[key] -= amount

    # -- reservations (placement groups' bundles: see state.groups) ------------------------------

    def reserve(self, node: int, holds: Mapping[str, float], offers: Mapping[str, float]) -> None:
        """Hold ``holds`` on ``node`` for a reservation, which offers ``offers`` there (names of its own) meanwhile."""
        pool = self.pools[node]
        self.hold(holds, node=node)
        for key, amount in offers.items():
            pool.total[key] = pool.total.get(key, 0.0) + amount
            pool.used.setdefault(key, 0.0)
            self.total[key] = self.total.get(key, 0.0) + amount
            self.used.setdefault(key, 0.0)

    def unreserve(self, node: int, holds: Mapping[str, float], offers: Mapping[str, float]) -> None:
        """A reservation ends: ``holds`` are free on ``node`` again and its ``offers`` are gone (what work still held
        of them is given back to nobody)."""
        pool = self.pools.get(node)
        if pool is None:
            return  # (gone with its node: remove_node took it out of the sums)
        self.release(holds, node=node)
        for key, amount in offers.items():
            left = pool.total.get(key, 0.0) - amount
            if left > 1e-9:
                pool.total[key] = left
                self.total[key] -= amount
                continue
            pool.total.pop(key, None)
            self._forget(key, amount, pool.used.pop(key, 0.0))

    def _forget(self, key: str, amount: float, used: float) -> None:
        """``amount`` of ``key`` (of which ``used`` was held) left the sums; a name no pool has any more goes."""
        self.total[key] = self.total.get(key, 0.0) - amount
        self.used[key] = self.used.get(key, 0.0) - used
        if self.total[key] <= 1e-9 and not any(key in p.total for p in self.pools.values()):
            del self.total[key]
            self.used.pop(key, None)

    def labels_of(self, node: int) -> Mapping[str, str]:
        pool = self.pools.get(node)
        return pool.labels if pool is not None else {}

    def free(self, node: int, free_cpus: float) -> dict[str, float]:
        """What ``node`` has free now (``free_cpus``: its CPUs no task or actor holds)."""
        pool = self.pools[node]
        out = {k: v - pool.used.get(k, 0.0) for k, v in pool.total.items()}
        out["CPU"] = free_cpus
        return out


def _amounts(amounts: Mapping[str, float]) -> str:
    return ", ".join(f"{v:g} {k}" for k, v in sorted(amounts.items())) or "nothing"


def _fits(needs: Mapping[str, float], free_cpus: float, total: Mapping[str, float], used: Mapping[str, float]) -> bool:
    for key, amount in needs.items():
        if key == "CPU":
            if amount and free_cpus < amount:
                return False
        elif used.get(key, 0.0) + amount > total.get(key, 0.0) + 1e-9:  # (sums of fractions: 0.1 + 0.2 fits 0.3)
            return False
    return True
