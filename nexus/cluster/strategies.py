"""Where a task may run (Ray's ``scheduling_strategy``): ``"DEFAULT"``, ``"SPREAD"``, or a node's affinity.

``NodeAffinitySchedulingStrategy(node_id, soft=False)`` runs a task on that
node (an id from ``nexus.nodes()``); ``soft=True`` runs it elsewhere when the
node has no idle worker or is gone. ``"SPREAD"`` places each task on the node
with the fewest busy workers among those with an idle one. The head turns
them into plain tuples for its queue (:func:`placement`).

``label_selector={"zone": "a"}`` (an option, as in Ray) runs a task or an
actor only on nodes whose labels match (``nexus start --labels zone=a``):
a value, ``"!value"`` (any other, or none), ``"in(a,b)"`` or ``"!in(a,b)"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["NodeAffinitySchedulingStrategy", "label_selector", "placement"]


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


def label_selector(selector: Any, what: str) -> Callable[[Mapping[str, str]], bool] | None:
    """Whether a node's labels match ``selector`` (Ray's ``label_selector`` option), as a function; None for none.

    ValueError when it is not a mapping of label names to conditions.
    """
    if not selector:
        return None
    if not isinstance(selector, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in selector.items()):
        raise ValueError(f"{what}: label_selector maps label names to values, such as {{'zone': 'a'}}, not {selector!r}")
    tests: list[tuple[str, bool, frozenset[str]]] = []  # (label, negated, values)
    for name, condition in selector.items():
        negated = condition.startswith("!")
        body = condition[1:] if negated else condition
        if body.startswith("in(") and body.endswith(")"):
            values = frozenset(v.strip() for v in body[3:-1].split(",") if v.strip())
        else:
            values = frozenset({body})
        if not values or any(not v or "(" in v or ")" in v for v in values):
            raise ValueError(f"{what}: label_selector[{name!r}] is a value, '!value', 'in(a,b)' or '!in(a,b)', not {condition!r}")
        tests.append((name, negated, values))

    def matches(labels: Mapping[str, str]) -> bool:
        return all((labels.get(name) in values) != negated for name, negated, values in tests)

    return matches
