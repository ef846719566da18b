"""``ray.util.queue``: Nexus's :mod:`nexus.util.queue` (``Queue``, ``Empty``, ``Full``)."""

import nexus.util.queue as _nexus_queue
from nexus.util.queue import *  # noqa: F403


def __getattr__(name: str) -> object:
    try:
        return getattr(_nexus_queue, name)
    except AttributeError:
        raise AttributeError(f"module 'ray.util.queue' has no attribute {name!r} (nexus.util.queue has none)") from None
