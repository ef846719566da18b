"""``GET /metrics`` on the head's management port: Prometheus metrics of every node of the cluster.

The head records every node's calls and workers as events (a node's agent sends its processes' CPU and memory
with its beats, see :mod:`nexus.cluster.remote.agent`); a :class:`~nexus.observe.metrics.PrometheusSink`,
started with the head, follows them with a ``node`` label (the node's id, as ``nexus list nodes`` shows it;
``driver`` for the processes of attached drivers) and reads each node's resources and live workers at each
scrape. Scraped with the port's token, as every command (Prometheus's ``authorization: {credentials_file:
~/.nexus/head/management.token}``, the bare token, read again at each scrape: a head's token is new at each
start). Without ``prometheus-client`` the path answers 501 saying what to install; on a head that records no
events, 409.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..core.errors import NexusError
from ..observe.hub import ObservationHub
from .port import CommandError

__all__ = ["ClusterMetrics"]


class ClusterMetrics:
    """The head's metrics of the whole cluster, following its events from :meth:`start` on."""

    content_type = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self, runtime: Any, service: Any) -> None:
        self.runtime, self.service = runtime, service
        self.sink: Any = None
        self.hub: ObservationHub | None = None
        self.unavailable: CommandError | None = None  # why there are none (no prometheus-client, no events)
        self.nodes: dict[str, str] = {}  # worker name -> its node's id (kept after it exits: its counts stay labelled)
        self.looked = 0.0  # when the workers were last looked up for a name not known yet
        self.lock = threading.Lock()

    def start(self) -> None:
        """Follow the head's events from now on (and what its ring still holds)."""
        if self.runtime.observed is None:
            self.unavailable = CommandError(409, "this head records no events (it was started with observation off): no metrics")
            return
        try:
            from ..observe.metrics import PrometheusSink

            sink = PrometheusSink(self.runtime.store_stats, serve=False, node_of=self._node_of, nodes=self._node_rows)
        except NexusError as exc:  # (no prometheus-client)
            self.unavailable = CommandError(501, f"{exc}, and restart the head")
            return
        self.hub = ObservationHub(self.runtime.observed, interval=1.0)
        self.sink = self.hub.add_sink(sink, from_now=False)

    def _node_of(self, worker: str) -> str:
        """(the hub's thread) The node ``worker`` runs on; looked up again at most twice a second."""
        found = self.nodes.get(worker)
        if found is None and time.monotonic() - self.looked >= 0.5:
            self.looked = time.monotonic()
            self._look_up()
            found = self.nodes.get(worker)
        return found or "unknown"

    def _look_up(self) -> None:
        rt = self.runtime
        with rt.lock:
            records = [*rt.every_worker_record(), *rt.peers.peers.values()]
        if len(self.nodes) > 100_000:
            self.nodes.clear()
        for record in records:
            self.nodes[record.name] = "driver" if record.kind == "driver" else f"{record.node:06x}"
        self.nodes["driver"] = f"{rt.node_id:06x}"  # (the head's own process: its cluster's driver)

    def _node_rows(self) -> list[dict[str, Any]]:
        """(a scrape's thread) Each node's state, resources and live workers, as the head has them now."""
        rt = self.runtime
        from ..cluster.state.tasks import NodeLoad

        with rt.lock:
            pools = {node: (dict(pool.total), dict(pool.used)) for node, pool in rt.resources.pools.items()}
            cpus = NodeLoad(rt.workers, rt.resources).cpus or {}
            alive: dict[int, int] = {}
            for record in [*rt.every_worker_record(), *rt.peers.peers.values()]:
                if record.alive and record.kind != "driver":
                    alive[record.node] = alive.get(record.node, 0) + 1
        rows = []
        for member in self.service.nodes_view():
            node = member["node_id"]
            total, used = pools.get(node, ({}, {}))
            if "CPU" in total and node in cpus:
                used["CPU"] = total["CPU"] - cpus[node]
            workers = alive.get(node, 0) if member["alive"] else 0
            row = {"node_id": f"{node:06x}", "host": member["host"], "alive": member["alive"], "workers": workers}
            rows.append({**row, "total": total, "used": used})
        return rows

    def render(self) -> bytes:
        """The metrics in Prometheus's text format; CommandError (501, 409) when there are none."""
        if self.unavailable is not None:
            raise self.unavailable
        with self.lock:
            if self.hub is None:
                raise CommandError(503, "the head is stopping: no metrics")
            self.hub.flush()
            import prometheus_client

            return bytes(prometheus_client.generate_latest(self.sink.registry))

    def close(self) -> None:
        with self.lock:
            if self.hub is not None:
                self.hub.close()
                self.hub = self.sink = None
