"""Per-thread facts the runtime needs on blocking paths.

``local.worker`` is the dispatcher worker running on this thread (or absent):
before a thread of a dispatcher blocks inside user code (waiting on a future,
in ``expect``), it hands the work queued on it to other workers so that a
blocking actor never starves the actors scheduled behind it.
"""

from __future__ import annotations

import threading

local = threading.local()


def before_blocking() -> None:
    """Tell the dispatcher owning this thread that it is about to block."""
    worker = getattr(local, "worker", None)
    if worker is not None:
        worker.hand_off()
