"""The head's lock, and what runs after it is released.

Everything the head decides under its lock that touches the outside world
(a message to a worker, a spill file to remove, a process to kill) is queued
as a command and run by the thread that releases the lock last, once it has
released it: a worker that stopped reading its channel, a slow disk or a
process that does not die can hold up the thread that carries the command
out, never the tables (other threads' calls keep their timeouts).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["TableLock"]


class TableLock:
    """A reentrant lock whose ``after(fn, *args)`` commands run once the outermost holder has released it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._acquire = self._lock.acquire
        self._release = self._lock.release
        self.depth = 0  # how deep its holder is (read and written only while holding it)
        self.commands: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()

    def __enter__(self) -> None:
        self._acquire()
        self.depth += 1

    def __exit__(self, *_exc: object) -> None:
        self.depth -= 1
        outermost = not self.depth
        self._release()
        if outermost and self.commands:
            self.run_commands()

    def acquire(self, blocking: bool = True) -> bool:
        if not self._acquire(blocking):
            return False
        self.depth += 1
        return True

    def release(self) -> None:
        self.__exit__()

    # What threading.Condition uses to wait with the lock released at any depth (as for an RLock)
    def _release_save(self) -> Any:
        depth, self.depth = self.depth, 0
        return depth, self._lock._release_save()  # type: ignore[attr-defined]

    def _acquire_restore(self, state: Any) -> None:
        self._lock._acquire_restore(state[1])  # type: ignore[attr-defined]
        self.depth = state[0]

    def _is_owned(self) -> bool:
        return self._lock._is_owned()  # type: ignore[attr-defined]

    def held(self) -> bool:
        """Whether the calling thread holds the lock."""
        return self._lock._is_owned()  # type: ignore[attr-defined]

    def after(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` once the lock is released (at once if the caller does not hold it)."""
        if self._lock._is_owned():  # type: ignore[attr-defined]
            self.commands.append((fn, args))
        else:
            fn(*args)

    def run_commands(self) -> None:
        """Carry out queued commands (any thread not holding the lock may; each runs once)."""
        commands = self.commands
        while True:
            try:
                fn, args = commands.popleft()
            except IndexError:
                return
            try:
                fn(*args)
            except Exception as exc:  # a command's failure is its own; the others still run
                import sys

                print(f"nexus: a deferred operation failed: {exc!r}", file=sys.stderr)
