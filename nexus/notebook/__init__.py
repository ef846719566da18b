"""The notebook experience: live views (ClusterView, TraceView, progress), the ``%nexus`` magic, the kernel."""

from __future__ import annotations

from typing import Any

__all__ = ["ClusterView", "TraceView", "load_ipython_extension", "progress"]


def load_ipython_extension(ipython: Any) -> None:
    from .magics import load_ipython_extension as load

    load(ipython)


def __getattr__(name: str) -> Any:  # the widgets import ipywidgets: only when asked for
    if name in ("ClusterView", "TraceView", "progress"):
        from . import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module 'nexus.notebook' has no attribute {name!r}")
