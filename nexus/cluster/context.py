"""The runtime of this process: the driver's after ``nexus.init()``, a worker's inside a worker, or none."""

from __future__ import annotations

from typing import Any

_current: Any = None


def set_current(runtime: Any) -> None:
    global _current
    _current = runtime


def current() -> Any:
    return _current
