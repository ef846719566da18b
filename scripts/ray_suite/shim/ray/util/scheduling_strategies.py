"""``ray.util.scheduling_strategies``: Nexus's :mod:`nexus.util.scheduling_strategies`."""

import nexus.util.scheduling_strategies as _nexus_strategies
from nexus.util.scheduling_strategies import *  # noqa: F403


def __getattr__(name: str) -> object:
    try:
        return getattr(_nexus_strategies, name)
    except AttributeError:
        raise AttributeError(f"module 'ray.util.scheduling_strategies' has no attribute {name!r} (nexus has none)") from None
