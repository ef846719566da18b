"""The task stream: a live picture of what ran and runs where (an anywidget view, drawn on a canvas).

A row per worker, grouped by host; a span per task or call, coloured by its
function or method (a legend names them); running work drawn growing; a
failed one edged in red; hover for its name, duration, worker and host (and
the bytes of its arguments and results where the events say them); wheel to zoom, drag to pan, click for a
span's caller -> callee arrows. Pause freezes the picture while what
happens meanwhile is still kept (and shown on resume).

The view is fed by the notebook's pump (:mod:`nexus.notebook.widgets`) at
most 10 times a second, and sends the browser at most one binary batch per
tick, however fast tasks run (:class:`~nexus.notebook.stream.StreamModel`).
Where no widget frontend runs, the notebook keeps a static HTML picture.
"""

from __future__ import annotations

import pathlib
import threading
import time
from typing import Any

from .stream import StreamModel
from .widgets import _join, _leave

__all__ = ["TaskStream"]

try:
    import anywidget
    import traitlets
except ImportError:  # (the views are optional: the 'notebook' extra)
    anywidget = None  # type: ignore[assignment]

_STATIC = pathlib.Path(__file__).with_name("static")


def _missing(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("the task stream needs anywidget (pip install anywidget, or the project's 'notebook' extra)")


if anywidget is None:
    TaskStream: Any = _missing
else:

    class TaskStream(anywidget.AnyWidget):  # type: ignore[no-redef,misc]
        """A live task stream of the cluster: ``nexus.TaskStream(window=10)`` in a notebook cell."""

        _esm = _STATIC / "task_stream.js"
        _css = _STATIC / "task_stream.css"
        paused = traitlets.Bool(False).tag(sync=True)
        window = traitlets.Float(10.0).tag(sync=True)

        SEND_EVERY = 0.1  # seconds: at most one message to the browser per tick of the pump
        MOST_PER_TICK = 1000  # spans drawn per tick at most (10,000 a second: the 20,000 kept hold two seconds)
        CHUNK = 64  # events read between letting other threads run (the driver waits for the interpreter no longer)

        def __init__(self, window: float = 10.0) -> None:
            from .. import state
            from ..observe import hub

            if not window > 0:
                raise ValueError(f"window is the seconds shown, a number above 0, not {window!r}")
            super().__init__(window=float(window))
            self.model = StreamModel(window)
            self._lock = threading.Lock()  # (the pump's thread sends batches; the kernel's answers "hello")
            past = hub().entries(0)  # the past; the pump brings what comes after _cursor
            self._cursor = past.cursor
            self.model.feed_raw(past.events)
            self.model.look(state.activity())
            self._drawn = self.model.version
            self._sent_at = 0.0
            self.on_msg(self._on_message)
            self.observe(self._on_window, names="window")
            _join(self)

        def close(self) -> None:
            """Stop following the cluster and close the widget."""
            _leave(self)
            super().close()

        def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
            if isinstance(content, dict) and content.get("kind") == "hello":  # a view opened: it starts from all
                with self._lock:
                    message, buffers = self.model.snapshot()
                    self.send(message, buffers)

        def _on_window(self, change: dict[str, Any]) -> None:
            self.model.window = float(change["new"])

        def _tick(self, look: Any) -> None:
            from ..observe import hub

            # The pump's cursor is its own: its first batch for this view may hold events the view read when it
            # was made (they would show twice), or start past them (a tick between the read and joining the pump).
            raw = look.entries
            if raw and raw[0][0] > self._cursor:
                raw = [e for e in hub().entries(self._cursor).events if e[0] < raw[0][0]] + raw
            if raw and raw[0][0] < self._cursor:
                raw = [e for e in raw if e[0] >= self._cursor]
            if raw:
                self._cursor = max(self._cursor, raw[-1][0] + 1)
            if len(raw) > self.MOST_PER_TICK:
                with self._lock:
                    raw = self.model.thin(raw, self.MOST_PER_TICK)
            for at in range(0, max(len(raw), 1), self.CHUNK):
                with self._lock:  # (paused too: the picture is frozen in the browser, not the data)
                    self.model.feed_raw(raw[at : at + self.CHUNK], look.missed if at == 0 else 0)
                time.sleep(0)  # let the driver's thread have the interpreter between chunks: it is doing the work
            with self._lock:
                self.model.look(look.activity)
                if self.model.version == self._drawn or time.monotonic() - self._sent_at < self.SEND_EVERY * 0.9:
                    return
                self._drawn = self.model.version
                self._sent_at = time.monotonic()
                message, buffers = self.model.batch()
                self.send(message, buffers)

        def _repr_mimebundle_(self, **kwargs: Any) -> Any:
            bundle = super()._repr_mimebundle_(**kwargs)
            data, meta = bundle if isinstance(bundle, tuple) else (bundle or {}, {})
            data = dict(data)
            data["text/html"] = self.model.to_html()  # (what a saved notebook shows where widgets do not run)
            return data, meta

        def _repr_html_(self) -> str:
            return self.model.to_html()
