"""``ray.util.scheduling_strategies``' names: where a task or an actor runs (``scheduling_strategy=``)."""

from ..cluster.strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

__all__ = ["NodeAffinitySchedulingStrategy", "PlacementGroupSchedulingStrategy"]
