"""The notebook experience: live views (TaskStream, ClusterView, progress), the ``%nexus`` magic, the kernel.

``TraceView`` is the task stream's earlier name (the same view).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ClusterView", "TaskStream", "TraceView", "load_ipython_extension", "progress"]


def load_ipython_extension(ipython: Any) -> None:
    from .magics import load_ipython_extension as load

    load(ipython)


def __getattr__(name: str) -> Any:  # the widgets import ipywidgets: only when asked for
    if name in ("TaskStream", "TraceView"):
        from .task_stream import TaskStream

        return TaskStream
    if name == "progress":
        from .progress import progress

        return progress
    if name == "ClusterView":
        from .widgets import ClusterView

        return ClusterView
    raise AttributeError(f"module 'nexus.notebook' has no attribute {name!r}")
