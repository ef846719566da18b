"""Prometheus metrics for the cluster: a sink of the ObservationHub and an HTTP endpoint (loopback by default).

Needs ``prometheus-client`` (``pip install -e '.[metrics]'``).
"""

from __future__ import annotations

from typing import Any

from ..core.errors import NexusError
from .hub import ObservationEvent, ObservationSink

__all__ = ["PrometheusSink"]


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise NexusError(
            "Prometheus metrics need the prometheus-client package: pip install prometheus-client "
            "(or the project's 'metrics' extra)"
        ) from None
    return prometheus_client


class PrometheusSink(ObservationSink):
    """Counters and gauges fed by the cluster's events, served at ``http://<addr>:<port>/metrics``."""

    def __init__(self, store_stats: Any = None, port: int = 0, addr: str = "127.0.0.1", serve: bool = True) -> None:
        prom = _prometheus()
        self.registry = prom.CollectorRegistry()
        r = self.registry
        self.submitted = prom.Counter("nexus_calls_submitted", "Tasks and actor calls submitted", ["what"], registry=r)
        self.finished = prom.Counter("nexus_calls_finished", "Tasks and actor calls finished", ["what", "status"], registry=r)
        self.duration = prom.Histogram(
            "nexus_call_seconds", "Time from start to results written, in the worker", ["what"], registry=r,
            buckets=(1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0),
        )
        self.workers = prom.Gauge("nexus_workers_alive", "Worker processes alive", registry=r)
        self.worker_events = prom.Counter("nexus_worker_events", "Workers started and died", ["state"], registry=r)
        self.actor_events = prom.Counter("nexus_actor_events", "Actors created, restarting, restarted, died", ["state"], registry=r)
        self.object_events = prom.Counter("nexus_object_events", "Objects put, freed, spilled, restored", ["state"], registry=r)
        self.cpu = prom.Gauge("nexus_process_cpu_percent", "CPU use of each process of the cluster", ["process"], registry=r)
        self.rss = prom.Gauge("nexus_process_resident_bytes", "Resident memory of each process", ["process"], registry=r)
        self.queued = prom.Gauge("nexus_process_queued", "Work waiting for each process", ["process"], registry=r)
        self.missed = prom.Counter("nexus_observation_missed", "Events the metrics missed (the ring was lapped)", registry=r)
        if store_stats is not None:
            used = prom.Gauge("nexus_object_store_used_bytes", "Bytes of the object store in use", registry=r)
            used.set_function(lambda: store_stats()["used"])
            capacity = prom.Gauge("nexus_object_store_capacity_bytes", "Size of the object store", registry=r)
            capacity.set_function(lambda: store_stats()["capacity"])
        self._what: dict[int, str] = {}
        self._alive = 0
        self.server: Any = None
        self.port = 0
        if serve:
            self.server, _thread = prom.start_http_server(port, addr=addr, registry=r)
            self.port = self.server.server_port
            self.addr = addr

    def on_events(self, events: list[ObservationEvent], missed: int) -> None:
        if missed:
            self.missed.inc(missed)
        for event in events:
            d = event.data
            if event.kind == "submitted":
                self._what[d["id"]] = d["what"]
                self.submitted.labels(d["what"]).inc()
            elif event.kind == "finished":
                what = self._what.pop(d["id"], "task")
                self.finished.labels(what, "ok" if d["ok"] else "failed").inc()
                self.duration.labels(what).observe((d["end"] - d["start"]) / 1e9)
            elif event.kind == "worker":
                self.worker_events.labels(d["state"]).inc()
                self._alive += 1 if d["state"] == "started" else -1
                self.workers.set(max(self._alive, 0))
            elif event.kind == "actor":
                self.actor_events.labels(d["state"]).inc()
            elif event.kind == "object":
                self.object_events.labels(d["state"]).inc()
            elif event.kind == "sample":
                self.cpu.labels(d["worker"]).set(d["cpu"])
                self.rss.labels(d["worker"]).set(d["rss"])
                self.queued.labels(d["worker"]).set(d["queued"])
        if len(self._what) > 100_000:  # calls whose end this sink never saw
            self._what.clear()

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
