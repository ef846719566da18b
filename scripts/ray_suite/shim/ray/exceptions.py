"""``ray.exceptions``: Nexus's :mod:`nexus.exceptions` (which already holds Ray's names)."""

import nexus.exceptions as _nexus_exceptions
from nexus.exceptions import *  # noqa: F403


def __getattr__(name: str) -> object:
    try:
        return getattr(_nexus_exceptions, name)
    except AttributeError:
        raise AttributeError(f"module 'ray.exceptions' has no attribute {name!r} (nexus.exceptions has none)") from None
