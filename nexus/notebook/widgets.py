"""The live views' pump, and ClusterView (the task stream: task_stream.py; progress(refs): progress.py).

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
from typing import Any

from .. import state
from ..observe import ObservationSink, hub
from ..observe.hub import to_event
from .models import ClusterModel

__all__ = ["ClusterView"]


def _ipywidgets() -> Any:
    try:
        import ipywidgets
    except ImportError:
        raise RuntimeError("the live views need ipywidgets (pip install ipywidgets, or the project's 'notebook' extra)") from None
    return ipywidgets


class _Pump(ObservationSink):
    """Feeds every live view of one cluster, on the hub's thread (every tick: running work grows with no event).

    It takes the ring's tuples as they are (``raw``): the views follow every task, and a record made per event
    would cost the cluster more than the views do (see ``python -m benchmarks --only views``).
    """

    ticks = True
    raw = True

    def __init__(self) -> None:
        self.views: weakref.WeakSet[Any] = weakref.WeakSet()
        self.lock = threading.Lock()

    def on_events(self, events: list[Any], missed: int) -> None:  # (a raw sink: the hub calls on_raw)
        raise NotImplementedError

    def on_raw(self, first: int, raw: list[tuple[Any, ...]], missed: int) -> None:
        views = list(self.views)
        if not views:
            return
        look = _Look(first, raw, missed)
        for view in views:
            try:
                view._tick(look)
            except Exception:  # a view that cannot draw must not stop the others
                continue


class _Look:
    """One tick: the events since the last (the ring's tuples from seq ``first`` on), and what the views ask the
    cluster, asked once each: the placement, the activity."""

    def __init__(self, first: int = 0, raw: list[tuple[Any, ...]] | None = None, missed: int = 0) -> None:
        self.first, self.raw, self.missed = first, raw or [], missed
        self._placement: Any = None
        self._activity: Any = None

    def events(self, kinds: set[str]) -> list[Any]:
        """The events of these kinds, as ObservationEvents."""
        return [to_event(self.first + i, r) for i, r in enumerate(self.raw) if r[0] in kinds]

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
    """The placement map, live: hosts -> workers -> the actor or tasks on each; what each really runs, what was
    sent ahead to it, whether it waits in get; load, memory and object store per host; the backlog at the head."""

    def __init__(self) -> None:
        widgets = _ipywidgets()
        self.model = ClusterModel()
        self.model.update(*_placement())
        self.model.look(state.activity())
        self.html = widgets.HTML(self.model.to_html())
        self.widget = widgets.VBox([self.html])
        self._drawn = self.model.version
        _pump().views.add(self)

    def _tick(self, look: _Look) -> None:
        self.model.update(*look.placement)
        self.model.look(look.activity)
        self.model.feed(look.events({"sample"}))
        if self.model.version != self._drawn:
            self._drawn = self.model.version
            self.html.value = self.model.to_html()


def __getattr__(name: str) -> Any:  # (the task stream is a module of its own: it needs anywidget)
    if name in ("TaskStream", "TraceView"):
        from .task_stream import TaskStream

        return TaskStream
    if name == "progress":
        from .progress import progress

        return progress
    raise AttributeError(f"module 'nexus.notebook.widgets' has no attribute {name!r}")
