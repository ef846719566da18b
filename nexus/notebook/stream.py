"""The task stream's data, as plain data: what a TaskStream view draws, and the batches it is sent.

:class:`StreamModel` keeps the spans of finished tasks and calls (a row per
worker, grouped by host), the ones running now (from ``nexus.state.activity``:
only what a worker really runs, not what was sent ahead to it), and the
caller -> callee links between them. The browser gets it in binary batches
(:meth:`StreamModel.batch`): the spans since the last batch as one array of
float64 (:data:`COLUMNS` per span), the new function names and the rows as
JSON; a view just opened asks for everything kept (:meth:`StreamModel.snapshot`).
Times are milliseconds since the model was made, on the head's clock.

The same model renders a static HTML picture (:meth:`StreamModel.to_html`)
that a saved notebook keeps where no widget frontend runs.
"""

from __future__ import annotations

import array
import html
import itertools
import math
import operator
import sys
import time
from collections import deque
from typing import Any

from ..cluster.observed import FIELDS

__all__ = ["COLUMNS", "PALETTE", "StreamModel", "nice_ticks"]

# One span in a batch: start and end (ms), its key, its function's index in ``names``, its row, its caller's key
# (-1: none there), flags (1: failed), the bytes of its arguments and of its results
# (-1: not known; the cluster's events do not say them now: measuring them cost 10% of calls submitted together).
COLUMNS = ("start", "end", "key", "name", "row", "parent", "flags", "args", "result")
FAILED = 1

# Tableau 10: distinct for most colour vision, readable on light and dark backgrounds (the browser uses the same).
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac", "#e15759")

_KIND = operator.itemgetter(1)  # (an entry's kind)
_KEYS_KEPT = 200_000  # task ids remembered for the caller links (then the oldest are forgotten)


def _size(raw: tuple[Any, ...], at: int) -> int:  # (an entry: its seq first)
    """An event's byte count (-1: not known, as from an older head)."""
    return raw[at] if len(raw) > at and raw[at] is not None else -1


def nice_ticks(t0: float, t1: float, count: int = 6) -> tuple[float, list[float]]:
    """(step, ticks): about ``count`` round values (1, 2 or 5 times a power of ten) between ``t0`` and ``t1``."""
    span = max(t1 - t0, 1e-9)
    raw = span / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(t0 / step) * step
    return step, [first + i * step for i in range(int((t1 - first) / step) + 1)]


def tick_label(value_ms: float, step_ms: float) -> str:
    """A tick's label, relative to now (``value_ms`` <= 0): "-12 s", "-1.5 s", "-250 ms", "now"."""
    if abs(value_ms) < step_ms / 1000:
        return "now"
    if step_ms >= 1000:
        return f"{value_ms / 1000:.0f} s"
    if step_ms >= 100:
        return f"{value_ms / 1000:.1f} s"
    return f"{value_ms:.0f} ms"


class StreamModel:
    """The spans of finished work, the work running now, and the batches that bring them to the browser."""

    def __init__(self, window: float = 10.0, keep: int = 20_000) -> None:
        self.window = float(window)  # seconds shown while following the present
        self.t0 = time.monotonic_ns()
        self.keep = keep
        self.spans: deque[tuple[float, ...]] = deque(maxlen=keep)  # rows of COLUMNS
        self.sent = 0  # spans appended in all (a batch carries the ones since the last)
        self._sent_at = 0
        self.names: list[str] = []
        self._name_ix: dict[str, int] = {}
        self.rows: list[str] = []  # worker names, in the order they were first seen
        self._row_ix: dict[str, int] = {}
        self.hosts: dict[str, str] = {}  # worker -> its host
        self.kinds: dict[str, str] = {}  # worker -> "task", "actor" (its actor's label), "spare"
        self.rows_version = 0
        self._keys: dict[int, int] = {}  # task or call id -> its key (small ints the browser can hold)
        self._next_key = 0
        self._names_sent = 0  # names the browser was sent
        self._submitted: dict[int, tuple[int, int, int]] = {}  # id -> (name, caller's id, argument bytes)
        self._first_seen: dict[int, int] = {}  # running id -> when a look first saw it run (ns), if the head did not say
        self._last_end: dict[int, float] = {}  # row -> end of its last finished span (ms)
        self.running: list[list[float]] = []  # [key, name, row, start ms]
        self.missed = 0
        self.skipped = 0  # spans not drawn: more finished in a tick than the view draws (see thin)
        self.version = 0  # bumped on every change: a view sends only when it moved

    # -- input -----------------------------------------------------------------------------

    def _ms(self, ns: int) -> float:
        return (ns - self.t0) / 1e6

    def key(self, task_id: int) -> int:
        key = self._keys.get(task_id)
        if key is None:
            if len(self._keys) >= _KEYS_KEPT:
                for old in list(self._keys)[: _KEYS_KEPT // 2]:
                    del self._keys[old]
            self._next_key += 1
            key = self._keys[task_id] = self._next_key
        return key

    def name(self, name: str) -> int:
        ix = self._name_ix.get(name)
        if ix is None:
            ix = self._name_ix[name] = len(self.names)
            self.names.append(name)
        return ix

    def row(self, worker: str) -> int:
        ix = self._row_ix.get(worker)
        if ix is None:
            ix = self._row_ix[worker] = len(self.rows)
            self.rows.append(worker)
            self.rows_version += 1
        return ix

    def feed(self, events: list[Any], missed: int = 0) -> None:
        """ObservationEvents (as :meth:`feed_raw` takes the ring's entries)."""
        self.feed_raw([(e.seq, e.kind, e.time_ns, *(e.data.get(f) for f in FIELDS[e.kind])) for e in events if e.kind in FIELDS], missed)

    LOOK_BACK = 50_000  # entries searched back for the submissions that name the spans a thinned tick keeps

    def thin(self, events: list[tuple[Any, ...]], most: int) -> list[tuple[Any, ...]]:
        """The events of one tick worth drawing: its last ``most`` spans with the submissions that name them, when
        more finished than that. A view keeps ``keep`` spans: at tens of thousands of calls a second it shows the
        last second or so either way, and reading every event would cost the cluster more than the view is
        worth. The work is in the spans kept, not in the events left out (only counted, in C: ``skipped``)."""
        finished = 0
        cut = len(events)
        while cut > 0 and finished < most:
            cut -= 1
            finished += events[cut][1] == "finished"
        if cut == 0:
            return events
        kept = events[cut:]
        named = {r[3] for r in kept if r[1] == "submitted"}
        needed = {r[3] for r in kept if r[1] == "finished" and r[3] not in named and r[3] not in self._submitted}
        found = []
        at, floor = cut, max(0, cut - self.LOOK_BACK)
        while needed and at > floor:  # (they are near: a submission comes shortly before its span, or a batch's)
            at -= 1
            raw = events[at]
            if raw[1] == "submitted" and raw[3] in needed:
                found.append(raw)
                needed.discard(raw[3])
        found.reverse()
        self.skipped += list(map(_KIND, itertools.islice(events, cut))).count("finished")
        return found + kept

    def feed_raw(self, events: list[tuple[Any, ...]], missed: int = 0) -> None:
        """The ring's events (``submitted`` names a task, ``finished`` makes its span); kept while paused too.

        The entries are the ring's: ``(seq, kind, time, *fields)``, the fields as :mod:`nexus.cluster.observed`
        says (a call's name still a (class, method) pair): a record, or even a copy, per event would cost more
        than the rest of this loop (the views follow every task).
        """
        self.missed += missed
        submitted, spans, key, name_of, t0 = self._submitted, self.spans, self.key, self.name, self.t0
        last_end = self._last_end
        for raw in events:
            kind = raw[1]
            if kind == "submitted":  # (its key now: a callee finishes before its caller, and names it)
                key(raw[3])
                name = raw[4]
                submitted[raw[3]] = (name_of(name if isinstance(name, str) else ".".join(name)), raw[7], _size(raw, 10))
            elif kind == "finished":
                task_id = raw[3]
                name_ix, parent, args = submitted.pop(task_id, (-1, 0, -1))
                if name_ix < 0:
                    name_ix = name_of(f"task {task_id:x}")
                row = self.row(raw[4])
                end = (raw[9] - t0) / 1e6
                spans.append(
                    (
                        (raw[6] - t0) / 1e6,
                        end,
                        key(task_id),
                        name_ix,
                        row,
                        key(parent) if parent else -1,
                        0 if raw[10] else FAILED,
                        args,
                        _size(raw, 11),
                    )
                )
                self.sent += 1
                if end > last_end.get(row, -math.inf):
                    last_end[row] = end
            elif kind == "worker" and raw[5] == "started":
                self.row(raw[3])
        if events:
            self.version += 1
        if len(submitted) > _KEYS_KEPT:  # (submissions whose end never came: cancelled, lapped)
            submitted.clear()

    def look(self, activity: Any) -> None:
        """What runs now (``nexus.state.activity()``): the running spans, and each worker's host and kind."""
        now = activity.time_ns
        running: list[list[float]] = []
        seen = {}
        for w in activity.workers:
            if w.state == "dead":
                continue
            kind = "task" if w.kind == "task" else (w.actor or "spare")
            if self.hosts.get(w.worker) != w.host or self.kinds.get(w.worker) != kind:
                self.hosts[w.worker], self.kinds[w.worker] = w.host, kind
                self.rows_version += 1
            if not w.running:
                continue
            row = self.row(w.worker)
            for r in w.running:
                since = r.since or self._first_seen.get(r.id) or now
                seen[r.id] = since
                start = max(self._ms(since), self._last_end.get(row, -math.inf))
                running.append([self.key(r.id), self.name(r.name), row, round(start, 3)])
        self._first_seen = seen
        if running != self.running:
            self.running = running
            self.version += 1

    # -- output ----------------------------------------------------------------------------

    def _header(self, kind: str, names_from: int) -> dict[str, Any]:
        return {
            "kind": kind,
            "now": round(self._ms(time.monotonic_ns()), 3),
            "names_from": names_from,
            "names": self.names[names_from:],
            "rows": [[w, self.hosts.get(w, ""), self.kinds.get(w, "")] for w in self.rows],
            "running": self.running,
            "missed": self.missed,
            "skipped": self.skipped,
            "window": self.window,
        }

    @staticmethod
    def _pack(spans: Any) -> bytes:
        data = array.array("d")
        for span in spans:
            data.extend(span)
        if sys.byteorder != "little":  # (the browser reads little-endian float64)
            data.byteswap()
        return data.tobytes()

    def snapshot(self) -> tuple[dict[str, Any], list[bytes]]:
        """Everything kept: what a view just opened starts from."""
        self._sent_at = self.sent
        self._names_sent = len(self.names)
        return self._header("snapshot", 0), [self._pack(self.spans)]

    def batch(self) -> tuple[dict[str, Any], list[bytes]]:
        """What changed since the last batch or snapshot: new spans, new names, the rows and what runs now."""
        new = min(self.sent - self._sent_at, len(self.spans))
        names_from = self._names_sent
        self._sent_at = self.sent
        self._names_sent = len(self.names)
        spans = [self.spans[i] for i in range(len(self.spans) - new, len(self.spans))]
        return self._header("batch", names_from), [self._pack(spans)]

    # -- the static picture ------------------------------------------------------------------

    def to_html(self, width: int = 720, row: int = 20) -> str:
        """The last ``window`` seconds as an SVG picture (for a saved notebook, or where no widget runs)."""
        if not self.spans and not self.running:
            return "<div class='nexus-stream'><i>no tasks or calls yet</i></div>"
        now = self._ms(time.monotonic_ns())
        t1 = max([now] if self.running else [s[1] for s in self.spans][-1:] or [now])
        t0 = t1 - self.window * 1000
        shown = [s for s in self.spans if s[1] >= t0][-2000:]
        rows = sorted({int(s[4]) for s in shown} | {int(r[2]) for r in self.running}, key=lambda r: (self.hosts.get(self.rows[r], ""), r))
        y = {r: 18 + i * row for i, r in enumerate(rows)}
        left = 150
        scale = (width - left - 10) / (t1 - t0)

        def x(t: float) -> float:
            return left + (max(t, t0) - t0) * scale

        ink = "var(--jp-ui-font-color1, currentColor)"
        parts = []
        several = len(set(self.hosts.values())) > 1
        for ix in rows:
            worker = self.rows[ix]
            label = f"{worker} · {self.hosts[worker]}" if several and worker in self.hosts else worker
            parts.append(f"<text x='4' y='{y[ix] + 14}' font-size='11' fill='{ink}'>{html.escape(label)}</text>")
        step, ticks = nice_ticks(t0 - t1, 0)
        bottom = 18 + len(rows) * row
        for t in ticks:
            parts.append(
                f"<line x1='{x(t + t1):.1f}' y1='14' x2='{x(t + t1):.1f}' y2='{bottom}' stroke='{ink}' stroke-opacity='0.15'/>"
                f"<text x='{x(t + t1):.1f}' y='10' font-size='10' text-anchor='middle' fill='{ink}'>{tick_label(t, step)}</text>"
            )
        for s in shown:
            fill = PALETTE[int(s[3]) % len(PALETTE)]
            edge = " stroke='#d62728' stroke-width='2'" if int(s[6]) & FAILED else ""
            width_ = max(x(s[1]) - x(s[0]), 1.0)
            tip = f"{self.names[int(s[3])]} ({s[1] - s[0]:.2f} ms){' failed' if int(s[6]) & FAILED else ''}"
            parts.append(
                f"<rect x='{x(s[0]):.1f}' y='{y[int(s[4])] + 2}' width='{width_:.1f}' height='{row - 4}' fill='{fill}'{edge}>"
                f"<title>{html.escape(tip)}</title></rect>"
            )
        for live in self.running:
            fill = PALETTE[int(live[1]) % len(PALETTE)]
            parts.append(
                f"<rect x='{x(live[3]):.1f}' y='{y[int(live[2])] + 2}' width='{max(x(t1) - x(live[3]), 1.0):.1f}' "
                f"height='{row - 4}' fill='{fill}' fill-opacity='0.5'>"
                f"<title>{html.escape(self.names[int(live[1])])} (running)</title></rect>"
            )
        legend = " ".join(
            f"<span style='white-space:nowrap'><span style='display:inline-block;width:10px;height:10px;"
            f"background:{PALETTE[i % len(PALETTE)]}'></span> {html.escape(n)}</span>"
            for i, n in enumerate(self.names[:20])
        )
        note = f", {self.missed} events missed" if self.missed else ""
        return (
            f"<div class='nexus-stream' style='color:{ink}'>last {self.window:g} s, {len(shown)} spans, "
            f"{len(self.running)} running{note}<br>{legend}"
            f"<svg width='{width}' height='{bottom + 4}'>{''.join(parts)}</svg></div>"
        )
