"""An ObjectRef as a :class:`concurrent.futures.Future` (``ref.future()``, as Ray's), and a callback when its
value is there (``ref._on_completed(callback)``).

One watcher thread a process waits for every ref that was asked for this way,
a batch at a time (``wait_ids`` on all of them), and settles each future as
its value arrives: its value, or the error ``get`` would raise. The watcher
keeps the refs (so the values stay) until their futures are settled, and
ends after a second with none. Callbacks run on that thread: one that waits
for another ref's value holds up every future of the process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from . import session

__all__ = ["future_of", "on_completed"]

_lock = threading.Condition()
_pending: dict[int, tuple[Any, Callable[[Any], Any], list[Future[Any]]]] = {}  # id -> (the ref, its get, futures)
_watcher: list[threading.Thread] = []


def future_of(ref: Any, resolve: Callable[[Any], Any]) -> Future[Any]:
    """A future of ``ref``'s value, which ``resolve(ref)`` gets once it is there (on the watcher thread)."""
    future: Future[Any] = Future()
    future.set_running_or_notify_cancel()
    with _lock:
        entry = _pending.setdefault(ref.id, (ref, resolve, []))
        entry[2].append(future)
        if not _watcher or not _watcher[0].is_alive():
            _watcher[:] = [threading.Thread(target=_watch, name="nexus-ref-futures", daemon=True)]
            _watcher[0].start()
        _lock.notify()
    return future


def on_completed(ref: Any, resolve: Callable[[Any], Any], callback: Callable[[Any], None]) -> None:
    """Call ``callback(value)`` once ``ref``'s value is there (with the error instead, if it failed)."""
    future_of(ref, resolve).add_done_callback(lambda done: callback(done.exception() or done.result()))


def _watch() -> None:
    while True:
        with _lock:
            if not _pending:
                _lock.wait(1.0)
            if not _pending:  # (a second with nothing to wait for: it ends; the next future starts another)
                _watcher.clear()
                return
            ids = list(_pending)
        runtime = session.current()
        if runtime is None:  # (the cluster is gone: what waits fails)
            _settle_all(RuntimeError("the cluster was shut down before this value arrived"))
            continue
        try:
            ready = runtime.wait_ids(ids, 1, 0.05)
        except Exception as exc:
            _settle_all(exc)
            continue
        for object_id in ready:
            with _lock:
                entry = _pending.pop(object_id, None)
            if entry is None:
                continue
            ref, resolve, futures = entry
            try:
                value, error = resolve(ref), None
            except BaseException as exc:  # (whatever it is, its futures get it: none is left waiting)
                value, error = None, exc
            for future in futures:
                if error is None:
                    future.set_result(value)
                else:
                    future.set_exception(error)


def _settle_all(error: BaseException) -> None:
    with _lock:
        entries = list(_pending.values())
        _pending.clear()
    for _ref, _resolve, futures in entries:
        for future in futures:
            future.set_exception(error)
