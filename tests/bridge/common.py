"""What several device tests use: a named cluster actor for devices to call."""

from __future__ import annotations

import nexus


@nexus.remote
class Counter:
    def __init__(self) -> None:
        self.total = 0

    def incr(self, by: int) -> int:
        self.total += by
        return self.total
