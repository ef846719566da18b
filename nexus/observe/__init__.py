"""Layer 4, observation: what ran where, when, and why it was slow.

``nexus.observe.hub()`` is the ObservationHub of the cluster this process
drives: a ring of its recent events (read with a cursor; a reader that fell
behind is told how many it missed) and sinks that follow it:
:class:`~nexus.observe.hub.LoggingSink`, Prometheus
(:func:`start_metrics_server`) and OpenTelemetry (:func:`enable_tracing`).
``nexus.timeline(path)`` writes a Chrome / Perfetto trace. The state API is
:mod:`nexus.state`.
"""

from __future__ import annotations

from typing import Any

from .hub import FIELDS, FollowingHub, LoggingSink, ObservationEvent, ObservationHub, ObservationSink
from .trace import chrome_trace, write_trace

__all__ = [
    "FIELDS",
    "FollowingHub",
    "LoggingSink",
    "ObservationEvent",
    "ObservationHub",
    "ObservationSink",
    "enable_tracing",
    "hub",
    "start_metrics_server",
    "timeline",
]


def _runtime() -> Any:
    from ..cluster.session import current_driver

    runtime = current_driver("observation")
    if runtime.observed is None:
        raise RuntimeError("this cluster records no events: it was started with nexus.init(observe=False)")
    return runtime


def hub() -> ObservationHub:
    """The ObservationHub of the running cluster (made on first use); in a driver attached to a head, one that
    follows the head's (:class:`FollowingHub`)."""
    from ..cluster.session import current

    session = current()
    if session is not None and session.driver() is None and getattr(session, "attached", False):
        following = getattr(session, "observation_hub", None)
        if following is None:
            following = FollowingHub(session)
            setattr(session, "observation_hub", following)  # noqa: B010  (an attached driver's, not in Session)
        return following
    runtime = _runtime()
    existing = runtime.observation_hub
    if existing is None:
        existing = runtime.observation_hub = ObservationHub(runtime.observed)
    return existing


def timeline(path: str | None = None) -> dict[str, Any]:
    """The recent tasks and calls as a Chrome / Perfetto trace; also written to ``path`` when given."""
    import os

    from .. import state

    trace = chrome_trace(hub().raw(), os.getpid(), {w.name: w.host for w in state.list_workers() if w.host})
    if path is not None:
        write_trace(path, trace)
    return trace


def start_metrics_server(port: int = 0, addr: str = "127.0.0.1") -> Any:
    """Serve Prometheus metrics at ``http://addr:port/metrics`` (loopback by default; port 0: any free one).

    Returns the sink: its ``port`` is the one it listens on; ``hub().remove_sink(sink)`` stops it.
    """
    from .metrics import PrometheusSink

    runtime = _runtime()
    return hub().add_sink(PrometheusSink(runtime.store_stats, port=port, addr=addr), from_now=False)


def enable_tracing(span_processor: Any = None, exporter: Any = None, service_name: str = "nexus") -> Any:
    """Send an OpenTelemetry span for every finished task and call to ``span_processor`` or ``exporter``; each says
    the worker, node and host it ran on."""
    from .otel import OpenTelemetrySink

    return hub().add_sink(OpenTelemetrySink(span_processor, exporter, service_name, where=_WorkerPlaces()), from_now=False)


class _WorkerPlaces:
    """Where each worker runs (node, host), asked of the cluster the first time a worker is named."""

    def __init__(self) -> None:
        self.known: dict[str, tuple[str, str]] = {}
        self.asked: set[str] = set()  # (names asked for once: a worker gone before that stays unknown)

    def __call__(self, worker: str) -> tuple[str, str] | None:
        found = self.known.get(worker)
        if found is None and worker not in self.asked:
            from .. import state

            if len(self.asked) > 100_000:
                self.asked.clear()
                self.known.clear()
            self.asked.add(worker)
            try:
                self.known.update({w.name: (w.node_id, w.host) for w in state.list_workers() if w.node_id})
            except Exception:  # (the cluster is going: the span says less)
                return None
            found = self.known.get(worker)
        return found
