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

import threading
import weakref
from collections.abc import Sequence
from typing import Any

from .. import state
from ..observe import ObservationSink, hub
from .models import ClusterModel, ProgressModel

__all__ = ["ClusterView", "progress"]


def _ipywidgets() -> Any:
    try:
        import ipywidgets
    except ImportError:
        raise RuntimeError("the live views need ipywidgets (pip install ipywidgets, or the project's 'notebook' extra)") from None
    return ipywidgets


class _Pump(ObservationSink):
    """Feeds every live view of one cluster, on the hub's thread (every tick: running work grows with no event)."""

    ticks = True

    def __init__(self) -> None:
        self.views: weakref.WeakSet[Any] = weakref.WeakSet()
        self.lock = threading.Lock()

    def on_events(self, events: list[Any], missed: int) -> None:
        views = list(self.views)
        if not views:
            return
        look = _Look()
        for view in views:
            try:
                view._tick(events, missed, look)
            except Exception:  # a view that cannot draw must not stop the others
                continue


class _Look:
    """What the views of one tick ask the cluster, asked once each: the placement, the activity."""

    def __init__(self) -> None:
        self._placement: Any = None
        self._activity: Any = None

    @property
    def placement(self) -> tuple[list[Any], list[Any], dict[str, list[str]]]:
        if self._placement is None:
            self._placement = _placement()
        return self._placement  # type: ignore[no-any-return]

    @property
    def activity(self) -> Any:
        if self._activity is None:
            self._activity = state.activity()
        return self._activity


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

    def _tick(self, events: list[Any], missed: int, look: Any) -> None:
        self.model.update(*look.placement)
        self.model.feed(events)
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


def __getattr__(name: str) -> Any:  # (the task stream is a module of its own: it needs anywidget)
    if name in ("TaskStream", "TraceView"):
        from .task_stream import TaskStream

        return TaskStream
    raise AttributeError(f"module 'nexus.notebook.widgets' has no attribute {name!r}")
