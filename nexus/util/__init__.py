"""Ray's ``ray.util`` names: placement groups, the scheduling strategies (as Ray's modules hold them),
:class:`ActorPool`, and :mod:`nexus.util.queue` (``Queue``, ``Empty``, ``Full``).

``nexus.util.placement_group(bundles, strategy="PACK")`` reserves bundles of
resources on the cluster's nodes; tasks and actors go into them with
``scheduling_strategy=PlacementGroupSchedulingStrategy(pg, i)`` (from
:mod:`nexus.util.scheduling_strategies`). See :mod:`nexus.cluster.placement_groups`.
"""

# (from the submodule, loaded first: the function then takes its name, as ray.util.placement_group is Ray's function)
from . import scheduling_strategies
from .actor_pool import ActorPool
from .placement_group import (
    PlacementGroup,
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)

__all__ = [
    "ActorPool",
    "PlacementGroup",
    "get_current_placement_group",
    "get_placement_group",
    "placement_group",
    "placement_group_table",
    "remove_placement_group",
    "scheduling_strategies",
]
