"""Progress over refs, per function: done, failed, running and waiting, with elapsed time, rate and ETA.

:class:`ProgressModel` is the logic (plain inputs, no widgets, no cluster);
:func:`progress` the live view: it names the function that makes each ref
once, from the driver's tables of pending tasks and calls, then follows the
refs on the views' pump (at most 10 times a second, on the hub's thread)
and asks which of them run now (``nexus.state.activity()``) a few times a
second. Like the other views it carries its last state as plain HTML, so a
saved notebook shows it.
"""

from __future__ import annotations

import enum
import html
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DONE_BEFORE", "OTHER", "FunctionProgress", "ProgressModel", "RefStatus", "progress"]

DONE_BEFORE = "(done before)"  # refs whose value was there when the view was made (made before, or a put)
OTHER = "other"  # refs pending but made by no task or call the driver holds (e.g. a generator's)
ACTIVITY_EVERY = 0.25  # seconds between looks at what runs now (nexus.state.activity asks the head's tables)
NOTHING = "—"

# JupyterLab's theme colours, with fallbacks for other front ends (readable on light and dark backgrounds)
DONE_COLOR = "var(--jp-success-color1, #4caf50)"
FAILED_COLOR = "var(--jp-error-color1, #d32f2f)"
RUNNING_COLOR = "var(--jp-brand-color1, #1976d2)"
TRACK_COLOR = "var(--jp-layout-color3, #ddd)"
TEXT_COLOR = "var(--jp-ui-font-color1, inherit)"
BAR_WIDTH = 240  # px


class RefStatus(enum.Enum):
    WAITING = "waiting"  # not started (queued, waiting for its arguments, or sent ahead to a busy worker)
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # done, with an error as its value


@dataclass(frozen=True)
class FunctionProgress:
    """The counts of one function's refs (or of all: name "total"). ``done`` counts the failed ones too."""

    name: str
    total: int
    done: int
    failed: int
    running: int
    waiting: int

    def describe(self) -> str:
        """The row's words, "12 of 50 done, 2 failed, 2 running, 36 waiting" (leaving out the counts that are 0)."""
        parts = [f"{self.done} of {self.total} done"]
        parts += [f"{n} {what}" for n, what in ((self.failed, "failed"), (self.running, "running"), (self.waiting, "waiting")) if n]
        return ", ".join(parts)


class ProgressModel:
    """The state of N refs, each made by a named function: fed with what finished and what runs, at times given.

    ``names[i]`` names the function (or ``Class.method``) that makes ref ``i``. ``update`` moves refs on; the
    rate is of refs finished since the first update (those done before the view do not count), over the time
    since ``start``.
    """

    def __init__(self, names: Sequence[str], start: float | None = None) -> None:
        self.names = list(names)
        self.status = [RefStatus.WAITING] * len(self.names)
        self.start = time.monotonic() if start is None else start
        self.now = self.start
        self.ended: float | None = None  # when the last ref finished (None: not yet)
        self.done_at_first: int | None = None  # refs done at the first update (done before the view)
        self._running: set[int] = set()
        self._done = 0
        self._counts: dict[str, list[int]] = {}  # name -> [refs, done, failed, running], in order of first ref
        for name in self.names:
            self._counts.setdefault(name, [0, 0, 0, 0])[0] += 1
        for last in (DONE_BEFORE, OTHER):  # these rows go last
            if last in self._counts:
                self._counts[last] = self._counts.pop(last)

    @property
    def finished(self) -> bool:
        return self._done == len(self.status)

    def update(self, now: float, finished: Mapping[int, bool] | None = None, running: Collection[int] | None = None) -> None:
        """At ``now``: the refs ``finished`` since the last update (index -> failed), and the indexes of those that
        run now (``running``; None: not looked at, as they were)."""
        for i, failed in (finished or {}).items():
            if self.status[i] in (RefStatus.DONE, RefStatus.FAILED):
                continue
            self._set(i, RefStatus.FAILED if failed else RefStatus.DONE)
            self._done += 1
        if running is not None:
            now_running = {i for i in running if self.status[i] in (RefStatus.WAITING, RefStatus.RUNNING)}
            for i in self._running - now_running:
                if self.status[i] is RefStatus.RUNNING:
                    self._set(i, RefStatus.WAITING)
            for i in now_running - self._running:
                self._set(i, RefStatus.RUNNING)
        self.now = max(now, self.now)
        if self.done_at_first is None:
            self.done_at_first = self._done
        if self.finished and self.ended is None:
            self.ended = self.now

    def _set(self, i: int, new: RefStatus) -> None:
        counts = self._counts[self.names[i]]
        old = self.status[i]
        if old is RefStatus.RUNNING:
            counts[3] -= 1
            self._running.discard(i)
        self.status[i] = new
        if new is RefStatus.RUNNING:
            counts[3] += 1
            self._running.add(i)
        elif new is not RefStatus.WAITING:
            counts[1] += 1
            counts[2] += new is RefStatus.FAILED

    def functions(self) -> list[FunctionProgress]:
        """A row per function, in the order of their first ref (DONE_BEFORE and OTHER last)."""
        return [
            FunctionProgress(name, n, done, failed, running, n - done - running)
            for name, (n, done, failed, running) in list(self._counts.items())
        ]

    def total(self) -> FunctionProgress:
        rows = self.functions()
        n, done, failed, running = (sum(getattr(r, key) for r in rows) for key in ("total", "done", "failed", "running"))
        return FunctionProgress("total", n, done, failed, running, n - done - running)

    @property
    def elapsed(self) -> float:
        return (self.ended if self.ended is not None else self.now) - self.start

    def rate(self) -> float | None:
        """Refs finished per second since the view was made; None until one has."""
        since = self._done - (self.done_at_first or 0)
        if since <= 0 or self.elapsed <= 0:
            return None
        return since / self.elapsed

    def eta(self) -> float | None:
        """Seconds until all are done at the rate so far; None while the rate is not known (0 once all are done)."""
        if self.finished:
            return 0.0
        rate = self.rate()
        return None if rate is None else (len(self.status) - self._done) / rate

    def summary(self) -> str:
        """The total line: "12 of 50 done, 2 failed · 2 running · elapsed 3.2 s · 15.6/s · ETA 2.4 s"."""
        total = self.total()
        head = f"{total.done} of {total.total} done" + (f", {total.failed} failed" if total.failed else "")
        if self.finished:
            if not self.rate():
                return f"{head} · all done before this view was made"
            return f"{head} · done in {format_elapsed(self.elapsed)}"
        parts = [head] + ([f"{total.running} running"] if total.running else []) + [f"elapsed {format_elapsed(self.elapsed)}"]
        rate = self.rate()
        if rate is not None:
            eta = self.eta()
            parts += [format_rate(rate), f"ETA {NOTHING if eta is None else format_elapsed(eta)}"]
        return " · ".join(parts)

    def to_html(self) -> str:
        rows = "".join(_row(f) for f in self.functions())
        total = self.total()
        return (
            f'<div class="nexus-progress" data-total="{total.total}" data-done="{total.done}" data-failed="{total.failed}" '
            f'data-running="{total.running}" data-waiting="{total.waiting}" '
            f'style="color:{TEXT_COLOR};font-size:var(--jp-ui-font-size1, 13px);line-height:1.6">'
            f'{rows}<div class="nexus-progress-total">{html.escape(self.summary())}</div></div>'
        )


def _row(f: FunctionProgress) -> str:
    def segment(n: int, color: str, what: str) -> str:
        if not n or not f.total:
            return ""
        return f'<div title="{n} {what}" style="width:{100 * n / f.total:.2f}%;background:{color}"></div>'

    bar = (
        f'<div style="display:flex;flex:none;width:{BAR_WIDTH}px;height:12px;background:{TRACK_COLOR};'
        f'border-radius:2px;overflow:hidden">'
        f"{segment(f.done - f.failed, DONE_COLOR, 'done')}{segment(f.failed, FAILED_COLOR, 'failed')}"
        f"{segment(f.running, RUNNING_COLOR, 'running')}</div>"
    )
    name = html.escape(f.name)
    return (
        f'<div class="nexus-progress-row" data-function="{name}" data-total="{f.total}" data-done="{f.done}" '
        f'data-failed="{f.failed}" data-running="{f.running}" data-waiting="{f.waiting}" '
        f'style="display:flex;align-items:center;gap:8px">'
        f'<span title="{name}" style="flex:none;width:14em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap">'
        f"{name}</span>{bar}<span>{html.escape(f.describe())}</span></div>"
    )


def format_elapsed(seconds: float) -> str:
    """``0.1 s``, ``3.2 s``, ``2 min 05 s``, ``1 h 02 min``."""
    if seconds < 60:
        return f"{max(seconds, 0.0):.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def format_rate(per_second: float) -> str:
    """``156/s``, ``15.6/s``, ``1.5/min`` (slower than one a second), ``0.01/min``."""
    if per_second >= 100:
        return f"{per_second:.0f}/s"
    if per_second >= 1:
        return f"{per_second:.1f}/s"
    per_minute = per_second * 60
    return f"{per_minute:.1f}/min" if per_minute >= 1 else f"{per_minute:.2g}/min"


def origins(rt: Any, refs: Sequence[Any]) -> tuple[list[str], dict[int, int]]:
    """The function that makes each ref (by index), and the id of the task or call that makes it (where one
    does), from the driver ``rt``'s pending tasks and calls: one scan of them, under its lock."""
    made_by: dict[int, tuple[str, int]] = {}  # object id -> (name, task or call id)
    with rt.lock:
        tasks = rt.tasks
        for task in (*tasks.queue, *tasks.waiting.values(), *tasks.running.values()):
            for oid in task.result_ids:
                made_by[oid] = (task.name, task.task_id)
        for actor in rt.actors.values():
            for call in (*actor.queue, *actor.inflight.values()):
                for oid in call.result_ids:
                    made_by[oid] = (f"{actor.cls_name}.{call.method}", call.call_id)
        names, ids = [], {}
        for i, ref in enumerate(refs):
            found = made_by.get(ref.id)
            if found is not None:
                names.append(found[0])
                ids[i] = found[1]
                continue
            entry = rt.objects.entries.get(ref.id)
            names.append(DONE_BEFORE if entry is None or entry.blob is not None else OTHER)
    return names, ids


class _Progress:
    """The live view of :func:`progress`: a widget showing the model's HTML, moved on by the views' pump."""

    def __init__(self, refs: Sequence[Any]) -> None:
        from ..cluster.session import current_driver
        from .widgets import _ipywidgets, _join

        widgets = _ipywidgets()
        self.refs = list(refs)
        self._runtime = current_driver("progress")
        names, self._ids = origins(self._runtime, self.refs)
        self.model = ProgressModel(names)
        self._pending = list(range(len(self.refs)))  # the indexes of the refs not finished yet
        self._looked_at = 0.0  # when activity() was last asked
        self._check(time.monotonic())
        self._drawn = self.model.to_html()
        self.html = widgets.HTML(self._drawn)
        self.widget = self.html
        if not self.model.finished:
            _join(self)

    def _check(self, now: float, look: Any = None) -> None:
        """Move the model on to ``now``; ``look``: the pump's tick's shared look at the cluster, if it has one."""
        from .. import state

        finished: dict[int, bool] = {}
        with self._runtime.lock:
            entries = self._runtime.objects.entries
            for i in self._pending:
                entry = entries.get(self.refs[i].id)
                if entry is None or entry.blob is not None:  # (no entry: made and released already)
                    finished[i] = bool(entry is not None and entry.blob.error)
        if finished:
            self._pending = [i for i in self._pending if i not in finished]
        running = None
        if self._pending and now - self._looked_at >= ACTIVITY_EVERY and any(i in self._ids for i in self._pending):
            self._looked_at = now
            activity = getattr(look, "activity", None)  # (asked once a tick for every view that wants it)
            if activity is None:
                activity = state.activity()
            ids = {r.id for w in activity.workers for r in w.running}
            running = [i for i in self._pending if self._ids.get(i) in ids]
        self.model.update(now, finished, running)

    def _tick(self, look: Any) -> None:
        from .widgets import _leave

        self._check(time.monotonic(), look)
        if self.model.finished:
            _leave(self)
        drawn = self.model.to_html()
        if drawn != self._drawn:
            self._drawn = self.html.value = drawn

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle["text/html"] = self.model.to_html()  # (what a saved notebook shows where widgets do not run)
        return bundle

    def _repr_html_(self) -> str:
        return self.model.to_html()


def progress(refs: Sequence[Any]) -> Any:
    """A live view of ``refs`` as their values arrive: a bar per function that makes them (done, failed, running,
    waiting), and a line with the elapsed time, the rate and an ETA.

    In a notebook it updates by itself (at most 10 times a second) until every ref is done; saved, the notebook
    keeps its last state. Refs whose value was there already are counted under "(done before)".
    """
    return _Progress(refs)
