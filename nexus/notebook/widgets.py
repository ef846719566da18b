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
import time
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

    It takes the ring's entries as they are (``raw``): the views follow every task, and a record made per event
    would cost the cluster more than the views do (see ``python -m benchmarks --only views``). It keeps to a
    budget: after a tick that took t seconds of CPU, the next comes t / BUDGET later (at most LONGEST), the events
    meanwhile kept for it, so a cluster at its limit loses at most about BUDGET of its driver's time to them.
    """

    ticks = True
    raw = True

    BUDGET = 0.02  # of the driver process's time the views may take: after a tick of t CPU seconds, wait t / BUDGET
    LONGEST = 1.0  # seconds between ticks at most, however long one took

    def __init__(self) -> None:
        self.views: weakref.WeakSet[Any] = weakref.WeakSet()
        self.lock = threading.Lock()
        self._pending: list[tuple[Any, ...]] = []  # events come while a tick waits (the hub's cursor moved on)
        self._missed = 0
        self._due = 0.0
        self.hub: Any = None  # the hub it follows

    def on_events(self, events: list[Any], missed: int) -> None:  # (a raw sink: the hub calls on_raw)
        raise NotImplementedError

    def on_raw(self, entries: list[tuple[Any, ...]], missed: int) -> None:
        views = list(self.views)
        if not views:  # (every view closed or gone: the hub's thread stops, until a view is made again)
            self._pending, self._missed = [], 0
            with _pumps_lock:
                if self.views:
                    return
                for h, pump in list(_pumps.items()):
                    if pump is self:
                        del _pumps[h]
                        h.remove_sink(self)
            return
        self._pending += entries
        self._missed += missed
        now = time.perf_counter()
        if now < self._due and threading.current_thread() is getattr(self.hub, "_thread", None):
            return  # (the last tick took long: the views wait, the cluster's work goes first; a flush() does not)
        look = _Look(self._pending, self._missed)
        self._pending, self._missed = [], 0
        cpu = time.thread_time()  # (its own time: not the waits in which it let the driver's thread run)
        for view in views:
            try:
                view._tick(look)
            except Exception:  # a view that cannot draw must not stop the others
                continue
        spent = time.thread_time() - cpu
        self._due = now + min(spent / self.BUDGET, self.LONGEST)


class _Look:
    """One tick: the events since the last (the ring's entries, ``(seq, kind, time_ns, *fields)``), and what the
    views ask the cluster, asked once each: the placement, the activity."""

    def __init__(self, entries: list[tuple[Any, ...]] | None = None, missed: int = 0) -> None:
        self.entries, self.missed = entries or [], missed
        self._placement: Any = None
        self._activity: Any = None

    def events(self, kinds: set[str]) -> list[Any]:
        """The events of these kinds, as ObservationEvents (looked for a slice at a time, letting the driver's
        thread run between slices: a tick after a long wait holds many)."""
        found: list[Any] = []
        entries = self.entries
        for at in range(0, len(entries), 8192):
            found += [to_event(e[0], e[1:]) for e in entries[at : at + 8192] if e[1] in kinds]
            time.sleep(0)
        return found

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


_pumps_lock = threading.Lock()  # (a pump leaving its hub and a view joining it: one at a time)


def _join(view: Any) -> None:
    """Feed ``view`` from now on: the pump of the cluster's hub (made, and made the hub's sink, on first use)."""
    h = hub()
    with _pumps_lock:
        pump = _pumps.get(h)
        if pump is None:
            pump = _pumps[h] = _Pump()
            pump.hub = h
            h.add_sink(pump)
        pump.views.add(view)


def _leave(view: Any) -> None:
    """A view closed: no pump feeds it any more."""
    for pump in list(_pumps.values()):
        pump.views.discard(view)


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
        _join(self)

    def close(self) -> None:
        """Stop following the cluster and close the widget."""
        _leave(self)
        self.widget.close()

    def _tick(self, look: _Look) -> None:
        self.model.update(*look.placement)
        self.model.look(look.activity)
        self.model.feed(look.events({"sample"}))
        if self.model.version != self._drawn:
            self._drawn = self.model.version
            self.html.value = self.model.to_html()
