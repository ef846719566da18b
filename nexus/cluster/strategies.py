"""Where a task may run (Ray's ``scheduling_strategy``): ``"DEFAULT"``, ``"SPREAD"``, or a node's affinity.

``NodeAffinitySchedulingStrategy(node_id, soft=False)`` runs a task on that
node (an id from ``nexus.nodes()``); ``soft=True`` runs it elsewhere when the
node has no idle worker or is gone. ``"SPREAD"`` places each task on the node
with the fewest busy workers among those with an idle one. The head turns
them into plain tuples for its queue (:func:`placement`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["NodeAffinitySchedulingStrategy", "placement"]


@dataclass(frozen=True)
class NodeAffinitySchedulingStrategy:
    node_id: str
    soft: bool = False


def placement(strategy: Any, what: str, alive: set[int]) -> tuple[Any, ...] | None:
    """The queue's form of ``strategy``: None, ``("spread",)`` or ``("node", id, soft)``; ValueError when it is wrong.

    ``alive``: the numbers of the nodes alive now (a hard affinity to another one can never be met).
    """
    if strategy is None or strategy == "DEFAULT":
        return None
    if strategy == "SPREAD":
        return ("spread",)
    if isinstance(strategy, NodeAffinitySchedulingStrategy):
        try:
            node = int(strategy.node_id, 16)
        except (TypeError, ValueError):
            raise ValueError(f"{what}: NodeAffinitySchedulingStrategy takes a NodeID of nexus.nodes(), not {strategy.node_id!r}") from None
        if node not in alive and not strategy.soft:
            raise ValueError(
                f"{what} can never run: node {strategy.node_id} is not alive in this cluster (nexus.nodes() lists them); "
                "pass soft=True to run it elsewhere then"
            )
        return ("node", node, bool(strategy.soft))
    raise ValueError(f"{what}: scheduling_strategy is 'DEFAULT', 'SPREAD' or a NodeAffinitySchedulingStrategy, not {strategy!r}")
