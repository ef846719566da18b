"""``GET /metrics`` on the head's management port: Prometheus metrics of every node of the cluster.

The head records every node's calls and workers as events (a node's agent sends its processes' CPU and memory
with its beats, see :mod:`nexus.cluster.remote.agent`); a :class:`~nexus.observe.metrics.PrometheusSink`
follows them with a ``node`` label (the node's id, as ``nexus list nodes`` shows it) and reads each node's
resources at each scrape. Scraped with the port's token, as every command: Prometheus's ``authorization:
{credentials_file: ...}``. Without ``prometheus-client`` the path answers 501 saying what to install.
"""

from __future__ import annotations

import threading
from typing import Any

from ..observe.hub import ObservationHub

__all__ = ["ClusterMetrics"]


class ClusterMetrics:
    """The head's metrics of the whole cluster (made when first scraped: a head never scraped pays nothing)."""

    content_type = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self, runtime: Any, service: Any) -> None:
        self.runtime, self.service = runtime, service
        self.sink: Any = None
        self.hub: ObservationHub | None = None
        self.nodes: dict[str, str] = {}  # worker name -> its node's id (kept after it exits: its counts stay labelled)
        self.lock = threading.Lock()

    def _node_of(self, worker: str) -> str:
        found = self.nodes.get(worker)
        if found is None:
            rt = self.runtime
            with rt.lock:
                records = [*rt.every_worker_record(), *rt.peers.peers.values()]
            if len(self.nodes) > 100_000:
                self.nodes.clear()
            for record in records:
                self.nodes[record.name] = f"{record.node:06x}"
            self.nodes["driver"] = f"{rt.node_id:06x}"  # (the head's own process: its cluster's driver)
            found = self.nodes.get(worker, "unknown")
        return found

    def _node_resources(self) -> list[dict[str, Any]]:
        rt = self.runtime
        from ..cluster.state.tasks import NodeLoad

        with rt.lock:
            pools = {node: (dict(pool.total), dict(pool.used)) for node, pool in rt.resources.pools.items()}
            cpus = NodeLoad(rt.workers, rt.resources).cpus or {}
        rows = []
        for member in self.service.nodes_view():
            total, used = pools.get(member["node_id"], ({}, {}))
            if "CPU" in total and member["node_id"] in cpus:
                used["CPU"] = total["CPU"] - cpus[member["node_id"]]
            node_id = f"{member['node_id']:06x}"
            rows.append({"node_id": node_id, "host": member["host"], "alive": member["alive"], "total": total, "used": used})
        return rows

    def render(self) -> bytes:
        """The metrics in Prometheus's text format (raises ImportError without prometheus-client)."""
        with self.lock:
            if self.sink is None:
                from ..observe.metrics import PrometheusSink

                if self.runtime.observed is None:
                    raise RuntimeError("this head records no events (it was started with observation off)")
                sink = PrometheusSink(self.runtime.store_stats, serve=False, node_of=self._node_of, nodes=self._node_resources)
                self.hub = ObservationHub(self.runtime.observed, interval=1.0)
                self.sink = self.hub.add_sink(sink, from_now=False)
            assert self.hub is not None
            self.hub.flush()
            import prometheus_client

            return bytes(prometheus_client.generate_latest(self.sink.registry))

    def close(self) -> None:
        with self.lock:
            if self.hub is not None:
                self.hub.close()
                self.hub = self.sink = None
