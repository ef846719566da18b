"""``ray.util``: Nexus's :mod:`nexus.util` (``ActorPool``, placement groups, ``queue``, ``scheduling_strategies``).

``ray.util.state`` and ``ray.util.client`` (Ray's state API and Ray Client) are Ray internals for this suite:
answered by the harness's import hook when it is on, else absent.
"""

import importlib as _importlib

import nexus.util as _nexus_util
from nexus.util import *  # noqa: F403

from . import queue, scheduling_strategies  # noqa: F401  (this shim's modules)

_INTERNAL = {"state", "client", "metrics", "iter", "multiprocessing", "dask", "joblib", "collective"}


def __getattr__(name: str) -> object:
    if name in _INTERNAL:
        try:
            return _importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"module 'ray.util' has no attribute {name!r} (not in this suite's scope)") from None
    try:
        return getattr(_nexus_util, name)
    except AttributeError:
        raise AttributeError(f"module 'ray.util' has no attribute {name!r} (nexus.util has none)") from None
