"""Where a task may run (Ray's ``scheduling_strategy``): ``"DEFAULT"``, ``"SPREAD"``, or a node's affinity.

``NodeAffinitySchedulingStrategy(node_id, soft=False)`` runs a task on that
node (an id from ``nexus.nodes()``); ``soft=True`` runs it elsewhere when the
node has no idle worker or is gone. ``"SPREAD"`` places each task on the node
with the fewest busy workers among those with an idle one. The head turns
them into plain tuples for its queue (:func:`placement`).

``label_selector={"zone": "a"}`` (an option, as in Ray) runs a task or an
actor only on nodes whose labels match (``nexus start --labels zone=a``):
a value, ``"!value"`` (any other, or none), ``"in(a,b)"`` or ``"!in(a,b)"``.

``PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i)``
runs a task or an actor in bundle ``i`` of a placement group (-1: any of its
bundles), on that bundle's node and from what it reserved; the head turns it
into needs of the group's own names (see :mod:`.state.groups`), not a tuple.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["NodeAffinitySchedulingStrategy", "PlacementGroupSchedulingStrategy", "label_selector", "placement"]


@dataclass(frozen=True)
class NodeAffinitySchedulingStrategy:
    node_id: str
    soft: bool = False


@dataclass(frozen=True)
class PlacementGroupSchedulingStrategy:
    """Run in a bundle of ``placement_group`` (Ray's): ``placement_group_bundle_index`` -1 is any of its bundles;
    ``placement_group_capture_child_tasks=True`` puts the tasks and actors it starts (naming no strategy of
    their own) in the group too. ValueError for a bundle the group does not have."""

    placement_group: Any
    placement_group_bundle_index: int = -1
    placement_group_capture_child_tasks: bool | None = False

    def __post_init__(self) -> None:
        count = getattr(self.placement_group, "bundle_count", None)
        if count is None or not hasattr(self.placement_group, "id"):
            raise ValueError(
                f"PlacementGroupSchedulingStrategy takes the PlacementGroup that placement_group() returned, not {self.placement_group!r}"
            )
        index = self.placement_group_bundle_index
        if not isinstance(index, int) or isinstance(index, bool) or not -1 <= index < count:
            raise ValueError(
                f"placement_group_bundle_index {index!r} does not exist: the group has {count} bundle{'s' if count != 1 else ''} "
                f"(0 to {count - 1}; -1 for any of them)"
            )


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
    raise ValueError(
        f"{what}: scheduling_strategy is 'DEFAULT', 'SPREAD', a NodeAffinitySchedulingStrategy or a PlacementGroupSchedulingStrategy, "
        f"not {strategy!r}"
    )


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
