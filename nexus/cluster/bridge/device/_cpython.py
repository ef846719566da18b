"""What the MicroPython client takes from ``ustruct`` and ``utime``, under CPython."""

import time
from struct import pack, unpack

__all__ = ["pack", "ticks_diff", "ticks_ms", "unpack"]


def ticks_ms() -> int:
    return int(time.monotonic() * 1000)


def ticks_diff(a: int, b: int) -> int:
    return a - b
