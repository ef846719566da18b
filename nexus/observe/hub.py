"""The ObservationHub: every process's events, in one ring, fanned out to sinks.

Producers (the driver's runtime, fed by what workers report with their
answers) append compact tuples to an :class:`~nexus.observe.ring.EventRing`:
one append per event, no lock, no allocation beyond the tuple, never a wait.
Readers turn them into :class:`ObservationEvent` records. Sinks
(:class:`ObservationSink`) get the events on the hub's own fan-out thread,
which reads the ring every ``interval`` seconds: a slow sink never slows the
cluster, and one that falls behind is told how many events it missed.

Event kinds (``ObservationEvent.kind``) and their data:

``submitted``      id, name, what (``task``/``call``), trace, parent, by, begin (ns)
``finished``       id, worker, pid, start, args, run, end (ns, on the worker), ok
``actor``          actor, state (``created``/``restarted``/``died``), worker, detail
``worker``         worker, pid, state (``started``/``died``), detail
``object``         id, state (``put``/``freed``/``spilled``/``restored``), nbytes
``sample``         worker, pid, cpu (percent), rss (bytes), queued (tasks or calls waiting)

Times are ``time.monotonic_ns()``: one clock for every process of the host.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..cluster.observed import FIELDS, expand
from ..core.event_ring import EventRing

__all__ = ["FIELDS", "FollowingHub", "LoggingSink", "ObservationEvent", "ObservationHub", "ObservationSink"]


@dataclass(frozen=True, slots=True)
class ObservationEvent:
    seq: int
    kind: str
    time_ns: int
    data: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


def to_event(seq: int, raw: tuple[Any, ...]) -> ObservationEvent:
    kind, ts, *values = expand(raw)
    return ObservationEvent(seq, kind, ts, dict(zip(FIELDS[kind], values, strict=False)))


class ObservationSink(abc.ABC):
    """Something that wants the cluster's events as they happen (on the hub's fan-out thread)."""

    ticks = False  # True: called at every interval, with no events too (a live view drawing time as it passes)
    raw = False  # True: given the ring's entries (:meth:`on_raw`), not ObservationEvents: no record made per event

    def on_raw(self, entries: list[tuple[Any, ...]], missed: int) -> None:  # noqa: B027  (for raw sinks)
        """New events as the ring holds them: ``(seq, kind, time_ns, *fields)`` (see :mod:`nexus.cluster.observed`)."""

    @abc.abstractmethod
    def on_events(self, events: list[ObservationEvent], missed: int) -> None:
        """New events, oldest first; ``missed``: how many were overwritten before this sink read them."""

    def close(self) -> None:  # noqa: B027  (optional hook)
        """The hub is closing: flush and let go of resources."""


class LoggingSink(ObservationSink):
    """Logs events on the ``nexus.observe`` logger: failures and deaths at WARNING, the rest at DEBUG."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("nexus.observe")

    def on_events(self, events: list[ObservationEvent], missed: int) -> None:
        if missed:
            self.logger.warning("missed %d observation events (the ring was lapped)", missed)
        for event in events:
            bad = (event.kind == "finished" and not event.data.get("ok")) or event.data.get("state") == "died"
            level = logging.WARNING if bad else logging.DEBUG
            if self.logger.isEnabledFor(level):
                self.logger.log(level, "%s %s", event.kind, event.data)


class ObservationHub:
    """The ring of one cluster's events and the sinks that follow it."""

    def __init__(self, ring: EventRing[tuple[Any, ...]] | None = None, interval: float = 0.1) -> None:
        self.ring: EventRing[tuple[Any, ...]] = ring if ring is not None else EventRing(65536)
        self.interval = interval
        self._sinks: list[tuple[ObservationSink, list[int]]] = []  # each with its cursor
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one delivery at a time: each event reaches a sink once
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def emit(self, kind: str, *values: Any) -> None:
        """Record one event (``values`` in the order of ``FIELDS[kind]``)."""
        self.ring.append((kind, time.monotonic_ns(), *values))

    # -- reading ------------------------------------------------------------------------------

    @property
    def cursor(self) -> int:
        return self.ring.cursor

    def read(self, cursor: int = 0, limit: int | None = None, kinds: set[str] | None = None) -> tuple[list[ObservationEvent], int, int]:
        """(events since ``cursor``, the next cursor, how many were missed)."""
        result = self.ring.read(cursor, limit, None if kinds is None else (lambda raw: raw[0] in kinds))
        first = result.cursor - len(result.events)
        events = (
            [to_event(first + i, raw) for i, raw in enumerate(result.events)]
            if kinds is None
            else [to_event(-1, raw) for raw in result.events]
        )
        return events, result.cursor, result.missed

    def raw(self) -> list[tuple[Any, ...]]:
        """Every event still in the ring as flat tuples ``(kind, time_ns, *fields)``, oldest first."""
        return [expand(raw) for raw in self.ring.read(0).events]

    # -- sinks --------------------------------------------------------------------------------

    def add_sink(self, sink: ObservationSink, from_now: bool = True) -> ObservationSink:
        with self._lock:
            self._sinks.append((sink, [self.ring.cursor if from_now else 0]))
            if self._thread is None:
                self._thread = threading.Thread(target=self._fan_out, name="nexus-observe", daemon=True)
                self._thread.start()
        return sink

    def remove_sink(self, sink: ObservationSink) -> None:
        with self._lock:
            self._sinks = [(s, c) for s, c in self._sinks if s is not sink]
            idle = not self._sinks
        with contextlib.suppress(Exception):
            sink.close()
        if idle:
            self._stop_thread()

    def _stop_thread(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            stop, self._stop = self._stop, threading.Event()
        stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(2)

    def flush(self) -> None:
        """Deliver what is in the ring to every sink now (on the calling thread)."""
        with self._flush_lock:
            with self._lock:
                sinks = list(self._sinks)
            for sink, cursor in sinks:
                if sink.raw:
                    result = self.entries(cursor[0])
                    cursor[0], events, missed = result.cursor, result.events, result.missed
                else:
                    events, cursor[0], missed = self.read(cursor[0])
                if events or missed or sink.ticks:
                    try:
                        if sink.raw:
                            sink.on_raw(events, missed)
                        else:
                            sink.on_events(events, missed)
                    except Exception:
                        logging.getLogger("nexus.observe").exception("observation sink %r failed", sink)

    def entries(self, cursor: int = 0) -> Any:
        """The ring's entries since ``cursor``, ``(seq, kind, time_ns, *fields)``, as a ReadResult (for readers of
        every event: no record made per event)."""
        return self.ring.entries(cursor)

    def _fan_out(self) -> None:
        stop = self._stop
        while not stop.wait(self.interval):
            self.flush()

    def close(self) -> None:
        self.flush()
        self._stop_thread()
        with self._lock:
            sinks, self._sinks = self._sinks, []
        for sink, _ in sinks:
            with contextlib.suppress(Exception):
                sink.close()


class FollowingHub(ObservationHub):
    """The hub of a process attached to a head (``nexus.init(address=...)``): a copy of the head's events, fetched
    in batches as they are read (at most every ``interval`` / 2), so sinks, views and ``timeline()`` work unchanged.

    Times stay the head's (a joined node's workers' timings are put on the head's clock there). Events the head
    dropped before they were fetched are counted in ``missed_upstream``.
    """

    BATCH = 10_000

    def __init__(self, session: Any, interval: float = 0.1) -> None:
        super().__init__(EventRing(65536), interval)
        self.session = session
        self.upstream = 0  # the head's cursor: what was fetched so far
        self.missed_upstream = 0
        self._pull_lock = threading.Lock()
        self._pulled_at = -1e9

    def pull(self) -> None:
        """Fetch what the head recorded since the last fetch (unless one was just made)."""
        with self._pull_lock:
            if time.monotonic() - self._pulled_at < self.interval / 2:
                return
            for _ in range(8):  # (a long backlog in a few batches; the rest at the next read)
                events, self.upstream, missed = self.session.control("events", self.upstream, self.BATCH)
                self.missed_upstream += missed
                for raw in events:
                    self.ring.append(tuple(raw))
                if len(events) < self.BATCH:
                    break
            self._pulled_at = time.monotonic()

    def _pull_quietly(self) -> None:
        try:
            self.pull()
        except Exception:  # the head gone or busy: what was fetched is still read; said once, at DEBUG
            logging.getLogger("nexus.observe").debug("could not fetch the head's events", exc_info=True)

    def read(self, cursor: int = 0, limit: int | None = None, kinds: set[str] | None = None) -> tuple[list[ObservationEvent], int, int]:
        self._pull_quietly()
        return super().read(cursor, limit, kinds)

    def entries(self, cursor: int = 0) -> Any:
        self._pull_quietly()
        return super().entries(cursor)

    def add_sink(self, sink: ObservationSink, from_now: bool = True) -> ObservationSink:
        if from_now:  # "now" is what the head has recorded so far, not what this copy fetched
            self._pulled_at = -1e9
            self._pull_quietly()
        return super().add_sink(sink, from_now)

    def raw(self) -> list[tuple[Any, ...]]:
        self._pull_quietly()
        return super().raw()
