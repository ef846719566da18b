"""``ray.actor``: Nexus's :mod:`nexus.actor` (``exit_actor``, ``ActorClass``, ``ActorHandle``, ``ActorMethod``)."""

import nexus.actor as _nexus_actor
from nexus.actor import *  # noqa: F403

# Ray-internal classes of ray.actor (caches, metadata): not API.
_INTERNAL = {"ActorClassMethodMetadata", "_modify_class", "ActorClassInheritanceException"}


def __getattr__(name: str) -> object:
    if name in _INTERNAL:
        try:
            from ray_suite_internals import stand_in  # (the harness's hook, when it is on)
        except ImportError:
            raise AttributeError(f"module 'ray.actor' has no attribute {name!r} (a Ray internal)") from None
        return stand_in(f"ray.actor.{name}")
    try:
        return getattr(_nexus_actor, name)
    except AttributeError:
        raise AttributeError(f"module 'ray.actor' has no attribute {name!r} (nexus.actor has none)") from None
