"""``nexus.drain_node``: drain a node of the cluster this process is in (what ``nexus drain NODE`` does; see
:mod:`nexus.cluster.remote.drain` for what a drain moves)."""

from __future__ import annotations

from typing import Any

__all__ = ["drain_node"]


def drain_node(node_id: str | int, deadline: float = 60.0) -> dict[str, Any]:
    """Start draining the node ``node_id`` (its ``NodeID`` in ``nexus.nodes()``): nothing new goes there, what can
    move moves, and once nothing runs there (or after ``deadline`` seconds) it leaves. Returns at once, with the
    node's state (``DRAINING``); ``nexus.nodes()`` says ``DEAD`` once it has left. ValueError when it cannot be
    drained (unknown, dead, the head's own, or a cluster of one host)."""
    from ..session import current

    session = current()
    if session is None:
        raise RuntimeError("no Nexus cluster in this process: call nexus.init(address=...) first")
    if isinstance(node_id, str):
        try:
            node = int(node_id, 16)
        except ValueError:
            raise ValueError(f"drain_node takes a NodeID of nexus.nodes() (six hex digits), not {node_id!r}") from None
    elif isinstance(node_id, int) and not isinstance(node_id, bool):
        node = node_id
    else:
        raise TypeError(f"drain_node takes a NodeID of nexus.nodes(), not {type(node_id).__name__}")
    try:
        return dict(session.control("drain", node, deadline))
    except AttributeError:
        raise ValueError(
            "this cluster is one host's (nexus.init()): only a cluster of nodes (nexus start --head, and nodes that "
            "join it) has nodes to drain"
        ) from None
