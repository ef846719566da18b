"""Ids of a cluster's objects, tasks, calls, actors and workers: each carries the node and the process that made it.

An id is ``node (24 bits) | process (24 bits) | counter (48 bits)``: every
process makes its own without asking anyone, ids of different processes and
nodes never meet, and a counter never wraps in practice (2^48). A node's
number is drawn at random when it starts (by the head, for its own node), so
that a ref kept from an earlier cluster does not name an object of this one.
Process 0 of a node is its agent (on one host: the driver); workers are
numbered from 1.
"""

from __future__ import annotations

import itertools

__all__ = ["COUNTER_BITS", "NODE_BITS", "PROCESS_BITS", "IdSpace", "node_of", "process_of"]

NODE_BITS = 24
PROCESS_BITS = 24
COUNTER_BITS = 48


class IdSpace:
    """The ids one process makes: ``new()`` is a fresh one (thread-safe: a C counter)."""

    __slots__ = ("base", "new", "node", "process")

    def __init__(self, node: int, process: int) -> None:
        if not 0 < node < 1 << NODE_BITS:
            raise ValueError(f"a node's number is between 1 and {(1 << NODE_BITS) - 1}, not {node}")
        if not 0 <= process < 1 << PROCESS_BITS:
            raise ValueError(f"a process's number is between 0 and {(1 << PROCESS_BITS) - 1}, not {process}")
        self.node = node
        self.process = process
        self.base = (node << PROCESS_BITS | process) << COUNTER_BITS
        # base + count: one C call per id (itertools.count from base + 1), no Python frame
        self.new = itertools.count(self.base + 1).__next__

    def __repr__(self) -> str:
        return f"IdSpace(node={self.node:x}, process={self.process})"

    def worker_id(self, index: int) -> int:
        """The id of worker ``index`` of this node (its process number)."""
        return self.node << PROCESS_BITS | index


def node_of(any_id: int) -> int:
    """The node an id was made on."""
    return any_id >> (PROCESS_BITS + COUNTER_BITS)


def process_of(any_id: int) -> int:
    """The process (0: the node's agent, the driver on one host; n: worker n) an id was made by."""
    return (any_id >> COUNTER_BITS) & ((1 << PROCESS_BITS) - 1)
