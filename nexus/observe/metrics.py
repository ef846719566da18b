"""Prometheus metrics for the cluster: a sink of the ObservationHub and an HTTP endpoint (loopback by default).

On a head of many hosts (``nexus start --head``), the management port serves them at ``GET /metrics``: every
node's calls, workers and processes (a node's agent sends its processes' samples with its beats) under a
``node`` label, and each node's resources, used and total. Needs ``prometheus-client``
(``pip install -e '.[metrics]'``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
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

    def __init__(
        self,
        store_stats: Any = None,
        port: int = 0,
        addr: str = "127.0.0.1",
        serve: bool = True,
        node_of: Callable[[str], str] | None = None,
        nodes: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        """``node_of(worker)``: the node a worker runs on (then the calls', workers' and processes' metrics carry a
        ``node`` label); ``nodes()``: each node's ``node_id``, ``host``, ``alive``, ``workers`` (alive), and its
        ``total`` and ``used`` resources, read at each scrape."""
        prom = _prometheus()
        self.registry = prom.CollectorRegistry()
        r = self.registry
        self._node_of = node_of
        at = ["node"] if node_of is not None else []
        self.submitted = prom.Counter("nexus_calls_submitted", "Tasks and actor calls submitted", ["what"], registry=r)
        self.finished = prom.Counter("nexus_calls_finished", "Tasks and actor calls finished", ["what", "status", *at], registry=r)
        self.duration = prom.Histogram(
            "nexus_call_seconds", "Time from start to results written, in the worker", ["what", *at], registry=r,
            buckets=(1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0),
        )
        # (with ``nodes``, read from them at each scrape: counting starts and deaths misses those the ring lost)
        self.workers = None if nodes is not None else prom.Gauge("nexus_workers_alive", "Worker processes alive", registry=r)
        self.worker_events = prom.Counter("nexus_worker_events", "Workers started and died", ["state", *at], registry=r)
        self.actor_events = prom.Counter("nexus_actor_events", "Actors created, restarting, restarted, died", ["state"], registry=r)
        self.object_events = prom.Counter("nexus_object_events", "Objects put, freed, spilled, restored", ["state"], registry=r)
        self.cpu = prom.Gauge("nexus_process_cpu_percent", "CPU use of each process of the cluster", ["process", *at], registry=r)
        self.rss = prom.Gauge("nexus_process_resident_bytes", "Resident memory of each process", ["process", *at], registry=r)
        self.queued = prom.Gauge("nexus_process_queued", "Work waiting for each process", ["process", *at], registry=r)
        if nodes is not None:
            r.register(_NodeCollector(nodes))
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

    def _at(self, worker: str) -> tuple[str, ...]:
        return () if self._node_of is None else (self._node_of(worker),)

    def on_events(self, events: list[ObservationEvent], missed: int) -> None:
        if missed:
            self.missed.inc(missed)
        for event in events:
            d = event.data
            if event.kind == "submitted":
                self._what[d["id"]] = d["what"]
                self.submitted.labels(d["what"]).inc()
            elif event.kind == "finished":
                what, at = self._what.pop(d["id"], "task"), self._at(d["worker"])
                self.finished.labels(what, "ok" if d["ok"] else "failed", *at).inc()
                self.duration.labels(what, *at).observe((d["end"] - d["start"]) / 1e9)
            elif event.kind == "worker":
                at = self._at(d["worker"])
                self.worker_events.labels(d["state"], *at).inc()
                if self.workers is not None:
                    self._alive += 1 if d["state"] == "started" else -1
                    self.workers.set(max(self._alive, 0))
                if d["state"] == "died":  # (its last CPU and memory are no longer true)
                    for gauge in (self.cpu, self.rss, self.queued):
                        with contextlib.suppress(KeyError):
                            gauge.remove(d["worker"], *at)
            elif event.kind == "actor":
                self.actor_events.labels(d["state"]).inc()
            elif event.kind == "object":
                self.object_events.labels(d["state"]).inc()
            elif event.kind == "sample":
                at = self._at(d["worker"])
                self.cpu.labels(d["worker"], *at).set(d["cpu"])
                self.rss.labels(d["worker"], *at).set(d["rss"])
                self.queued.labels(d["worker"], *at).set(d["queued"])
        if len(self._what) > 100_000:  # calls whose end this sink never saw
            self._what.clear()

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class _NodeCollector:
    """Each node's state and resources, read when scraped (they are the head's: no event says them)."""

    def __init__(self, nodes: Callable[[], list[dict[str, Any]]]) -> None:
        from prometheus_client import core

        self.core = core
        self.nodes = nodes

    def describe(self) -> list[Any]:
        return []  # (no metric known before the first scrape: the registry then asks collect)

    def collect(self) -> Iterator[Any]:
        core = self.core
        alive = core.GaugeMetricFamily("nexus_node_alive", "1 while the node is a live member, 0 once it is gone", labels=["node", "host"])
        workers = core.GaugeMetricFamily("nexus_workers_alive", "Worker processes alive", labels=["node"])
        total = core.GaugeMetricFamily("nexus_node_resource_total", "What the node has of each resource", labels=["node", "resource"])
        used = core.GaugeMetricFamily("nexus_node_resource_used", "What of it running work holds", labels=["node", "resource"])
        for node in self.nodes():
            alive.add_metric([node["node_id"], node["host"]], 1.0 if node["alive"] else 0.0)
            workers.add_metric([node["node_id"]], float(node.get("workers", 0)))
            for name, value in node["total"].items():
                total.add_metric([node["node_id"], name], float(value))
                used.add_metric([node["node_id"], name], float(node["used"].get(name, 0.0)))
        yield from (alive, workers, total, used)
