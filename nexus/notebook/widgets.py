"""Live views of the cluster for Jupyter: ClusterView, TraceView, progress(refs).

One pump per cluster owns every widget write: it is a sink of the
ObservationHub, so it runs on the hub's thread at most 10 times a second,
feeds each view's model with what happened since the last tick, and writes a
widget only when its model changed (one comm message per view per tick at
most: Jupyter drops output beyond ~1000 messages a second). Views hold no
copy of the truth beyond their models, which read the hub and nexus.state.
Each view also carries a plain HTML rendering, so a saved notebook shows the
last state where widgets do not run (GitHub, nbviewer).
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from .. import state
from ..observe import ObservationSink, hub
from .models import ClusterModel, ProgressModel, TraceModel

__all__ = ["ClusterView", "TraceView", "progress"]


def _ipywidgets() -> Any:
    try:
        import ipywidgets
    except ImportError:
        raise RuntimeError("the live views need ipywidgets (pip install ipywidgets, or the project's 'notebook' extra)") from None
    return ipywidgets


class _Pump(ObservationSink):
    """Feeds every live view of one cluster, on the hub's thread."""

    def __init__(self) -> None:
        self.views: weakref.WeakSet[Any] = weakref.WeakSet()
        self.lock = threading.Lock()

    def on_events(self, events: list[Any], missed: int) -> None:
        views = list(self.views)
        snapshot = None
        if any(isinstance(v, ClusterView) for v in views):
            snapshot = _placement()
        for view in views:
            try:
                view._tick(events, missed, snapshot)
            except Exception:  # a view that cannot draw must not stop the others
                continue


_pumps: weakref.WeakKeyDictionary[Any, _Pump] = weakref.WeakKeyDictionary()


def _pump() -> _Pump:
    h = hub()
    pump = _pumps.get(h)
    if pump is None:
        pump = _pumps[h] = _Pump()
        h.add_sink(pump)
    return pump


def _placement() -> tuple[list[Any], list[Any], dict[str, list[str]]]:
    return state.placement()


class _View:
    model: Any
    widget: Any

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle["text/html"] = self.model.to_html()
        return bundle

    def _repr_html_(self) -> str:
        return str(self.model.to_html())


class ClusterView(_View):
    """Placement, live: the host, its workers, the actor or tasks on each, with load, waiting work and restarts."""

    def __init__(self) -> None:
        widgets = _ipywidgets()
        self.model = ClusterModel()
        self.model.update(*_placement())
        self.html = widgets.HTML(self.model.to_html())
        self.widget = widgets.VBox([self.html])
        self._drawn = self.model.version
        _pump().views.add(self)

    def _tick(self, events: list[Any], missed: int, snapshot: Any) -> None:
        if snapshot is not None:
            self.model.update(*snapshot)
        self.model.feed(events)
        if self.model.version != self._drawn:
            self._drawn = self.model.version
            self.html.value = self.model.to_html()


class TraceView(_View):
    """A live timeline of recent spans per worker (grouped by host) with caller -> callee arrows; pause and a
    window to zoom."""

    HOSTS_EVERY = 2.0  # seconds between looks at which host each worker is on (without a ClusterView's snapshot)

    def __init__(self, window: float = 10.0) -> None:
        widgets = _ipywidgets()
        self.model = TraceModel(window)
        self._hosts_at = 0.0
        self._hosts(None)
        events, self._cursor, _missed = hub().read(0)  # the past; the pump brings what comes after _cursor
        self.model.feed(events)
        self.html = widgets.HTML(self.model.to_html())
        self.pause = widgets.ToggleButton(value=False, description="pause", tooltip="stop following new spans")
        self.zoom = widgets.FloatLogSlider(value=window, base=10, min=-2, max=2, step=0.1, description="window (s)")
        self.pause.observe(self._paused, names="value")
        self.zoom.observe(self._zoomed, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.pause, self.zoom]), self.html])
        self._drawn = self.model.version
        _pump().views.add(self)

    def _hosts(self, snapshot: Any) -> None:
        if snapshot is None and time.monotonic() - self._hosts_at < self.HOSTS_EVERY:
            return
        self._hosts_at = time.monotonic()
        workers = snapshot[0] if snapshot is not None else state.list_workers()
        hosts = {w.name: w.host for w in workers if w.host}
        if hosts != self.model.hosts:
            self.model.hosts = hosts
            self.model.version += 1

    def _paused(self, change: dict[str, Any]) -> None:
        self.model.paused = bool(change["new"])

    def _zoomed(self, change: dict[str, Any]) -> None:
        new = float(change["new"])
        if abs(math.log10(new) - math.log10(self.model.window)) <= self.zoom.step / 2 + 1e-9:
            return  # the slider rounding the window it was given to its nearest step (30 s -> 31.6 s): not a zoom
        self.model.window = new
        self.html.value = self.model.to_html()

    def _tick(self, events: list[Any], missed: int, snapshot: Any) -> None:
        # The pump's cursor is its own: its first batch for this view may hold events the view read when it was
        # made (they would show twice), or start past them (a tick between the read and joining the pump).
        if events and events[0].seq > self._cursor:
            gap, _, _ = hub().read(self._cursor, limit=events[0].seq - self._cursor)
            events = gap + events
        if events and events[0].seq < self._cursor:
            events = [e for e in events if e.seq >= self._cursor]
        if events:
            self._cursor = events[-1].seq + 1
        self._hosts(snapshot)
        self.model.feed(events, missed)
        if self.model.version != self._drawn:
            self._drawn = self.model.version
            self.html.value = self.model.to_html()


class _Progress(_View):
    def __init__(self, refs: Sequence[Any]) -> None:
        widgets = _ipywidgets()
        self.refs = list(refs)
        self.model = ProgressModel(len(self.refs))
        self.bar = widgets.IntProgress(value=0, min=0, max=max(len(self.refs), 1), description="done")
        self.label = widgets.Label("")
        self.widget = widgets.HBox([self.bar, self.label])
        self._check()
        if self.model.done < self.model.total:
            _pump().views.add(self)

    def _check(self) -> None:
        from ..cluster.session import current_driver

        runtime = current_driver("progress")
        done = failed = 0
        with runtime.lock:
            for ref in self.refs:
                obj = runtime.objects.entries.get(ref.id)
                if obj is None or obj.blob is not None:
                    done += 1
                    failed += bool(obj is not None and obj.blob is not None and obj.blob.error)
        if (done, failed) != (self.model.done, self.model.failed):
            self.model.done, self.model.failed = done, failed
            self.bar.value = done
            self.label.value = f"{done}/{self.model.total}" + (f", {failed} failed" if failed else "")

    def _tick(self, events: list[Any], missed: int, snapshot: Any) -> None:
        self._check()
        if self.model.done >= self.model.total:
            _pump().views.discard(self)


def progress(refs: Sequence[Any]) -> Any:
    """A progress bar over ``refs`` that fills as their values arrive (live in a notebook)."""
    return _Progress(refs)
