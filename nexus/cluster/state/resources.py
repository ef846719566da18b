"""What a cluster has (CPUs and custom resources) and what its tasks and actors hold."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["Resources"]


class Resources:
    """The totals and the amounts held, by resource name.

    CPUs are special: plain tasks hold one each while they run on a worker,
    counted from the workers (see :meth:`TaskScheduler.free_cpus`), so
    ``used["CPU"]`` counts only what actors and special tasks hold.
    """

    __slots__ = ("total", "used")

    def __init__(self, num_cpus: float, custom: Mapping[str, float] | None = None) -> None:
        self.total: dict[str, float] = {"CPU": float(num_cpus), **{k: float(v) for k, v in (custom or {}).items()}}
        self.used: dict[str, float] = dict.fromkeys(self.total, 0.0)

    def needs_of(self, options: Mapping[str, Any], name: str, default_cpu: float) -> dict[str, float] | None:
        """What a task or actor holds while it runs; None for a plain one-CPU task. Infeasible needs raise ValueError."""
        if not options:
            return None
        cpu = options.get("num_cpus")
        resources = dict(options.get("resources") or {})
        if options.get("num_gpus"):
            resources["GPU"] = float(options["num_gpus"])
        if (cpu is None or cpu == default_cpu) and not resources:
            return None
        # None of a resource is no need at all (and must not name one the cluster lacks)
        needs = {"CPU": float(default_cpu if cpu is None else cpu), **{k: float(v) for k, v in resources.items() if v != 0}}
        for key, amount in needs.items():
            if amount < 0:
                raise ValueError(f"{name} asks for {amount} {key}: resource amounts cannot be negative")
            if amount > self.total.get(key, 0.0):
                have = self.total.get(key, 0.0)
                raise ValueError(
                    f"{name} can never run: it needs {amount:g} {key} and the cluster has {have:g} "
                    f"(nexus.init(num_cpus=..., resources={{...}}) sets what the cluster has)"
                )
        return needs

    def fits(self, needs: Mapping[str, float], free_cpus: float) -> bool:
        """Whether ``needs`` fit what is free now (``free_cpus``: CPUs no running task or actor holds)."""
        for key, amount in needs.items():
            if key == "CPU":
                if free_cpus < amount:
                    return False
            elif self.used[key] + amount > self.total[key]:
                return False
        return True

    def short_of(self, needs: Mapping[str, float], free_cpus: float) -> list[str]:
        """The resources of ``needs`` that are not free now."""
        return [k for k, v in needs.items() if (free_cpus if k == "CPU" else self.total[k] - self.used[k]) < v]

    def hold(self, needs: Mapping[str, float], cpu: bool = True) -> None:
        for key, amount in needs.items():
            if cpu or key != "CPU":
                self.used[key] += amount

    def release(self, needs: Mapping[str, float], cpu: bool = True) -> None:
        for key, amount in needs.items():
            if cpu or key != "CPU":
                self.used[key] -= amount
