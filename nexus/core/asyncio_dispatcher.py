"""AsyncioDispatcher: actor turns on an asyncio event loop.

Actors whose ``receive`` is ``async def`` run here: a turn is a task that
awaits each message's handler before taking the next, so messages of one
actor never interleave, while different actors interleave at ``await``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable

from .dispatcher import DispatcherStatistics, TurnRunner
from .future import Future

if TYPE_CHECKING:
    import asyncio

__all__ = ["AsyncioDispatcher"]


class AsyncioDispatcher:
    """Runs turns on ``loop``, or on a private loop in a daemon thread started on first use."""

    is_async = True

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, throughput: int = 300, name: str = "nexus-asyncio") -> None:
        if throughput < 1:
            raise ValueError(f"throughput must be at least 1 message per turn, got {throughput}")
        self.throughput = throughput
        self._name = name
        self._loop = loop
        self._owns_loop = loop is None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._scheduled = 0
        self._closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop turns run on (started now if it is the private one)."""
        if self._loop is None or (self._owns_loop and self._thread is None):
            self._start()
        assert self._loop is not None
        return self._loop

    def _start(self) -> None:
        import asyncio

        with self._start_lock:
            if self._thread is not None:
                return
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                try:
                    loop.run_forever()
                finally:
                    # Closed here, by its own thread, also when shutdown() ran on the loop itself.
                    for task in asyncio.all_tasks(loop):
                        task.cancel()
                    loop.run_until_complete(loop.shutdown_asyncgens())
                    loop.close()

            self._loop = loop
            self._thread = threading.Thread(target=run, name=self._name, daemon=True)
            self._thread.start()
            ready.wait()

    def in_loop_thread(self) -> bool:
        import asyncio

        loop = self._loop
        if loop is None:
            return False
        try:
            return asyncio.get_running_loop() is loop
        except RuntimeError:
            return False

    def schedule(self, runnable: Callable[[], Any]) -> None:
        loop = self.loop
        self._scheduled += 1
        if self.in_loop_thread():
            loop.call_soon(runnable)
        else:
            loop.call_soon_threadsafe(runnable)

    def help(self, mailbox: TurnRunner, until: Future[Any], deadline: float | None = None) -> None:
        if self.in_loop_thread():
            raise RuntimeError(
                "blocking on a future inside the event loop that must complete it would deadlock; "
                "use 'await future' in async code"
            )

    def shutdown(self, wait: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_loop and self._loop is not None and self._thread is not None:
            loop = self._loop
            loop.call_soon_threadsafe(loop.stop)
            if wait and self._thread is not threading.current_thread():
                self._thread.join(timeout=5.0)

    def statistics(self) -> DispatcherStatistics:
        return DispatcherStatistics("asyncio", 1 if self._loop is not None else 0, 0, 0, self._scheduled)
