"""``nexus drain NODE``: drain a node of a running cluster (see :mod:`nexus.cluster.remote.drain`), and wait until
it has left.

NODE is its number as ``nexus status`` and ``nexus.nodes()`` show it (six hex digits; leading zeros may go).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from .start import add_head_options, clear_errors, head_link

__all__ = ["add_commands"]


def _node(text: str) -> int:
    try:
        node = int(text, 16)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a node is its number as `nexus status` shows it (hex, such as 000001), not {text!r}") from None
    if node <= 0:
        raise argparse.ArgumentTypeError(f"a node's number is positive, not {text!r}")
    return node


def _drain(args: argparse.Namespace) -> int:
    from ..cluster.remote.agent import HeadUnreachableError, KeyRefusedError

    opened = head_link(args, "drain")
    if isinstance(opened, int):
        return opened
    link, address = opened
    try:
        op, reply = link.request("drain", args.timeout, node_id=args.node, deadline=args.deadline)
        if op == "refused":
            print(f"nexus drain: {reply['why']}", file=sys.stderr)
            return 1
        print(f"node {args.node:06x} of the head at {address} is draining (deadline {args.deadline:g} s)")
        if args.no_wait:
            return 0
        until = time.monotonic() + args.deadline + 30  # (the deadline, then the time it has to leave)
        while time.monotonic() < until:
            _op, reply = link.request("nodes", args.timeout)
            node = next((n for n in reply["nodes"] if n["node_id"] == args.node), None)
            if node is None or not node["alive"]:
                print(f"node {args.node:06x} has left ({node['why'] if node else 'gone'})")
                return 0
            time.sleep(0.2)
        print(f"nexus drain: node {args.node:06x} has not left within {args.deadline + 30:g} s", file=sys.stderr)
        return 1
    except (HeadUnreachableError, KeyRefusedError) as exc:
        print(f"nexus drain: {exc}", file=sys.stderr)
        return 1
    finally:
        link.close()


def add_commands(commands: Any) -> None:
    drain = commands.add_parser(
        "drain",
        help="drain a node: nothing new goes there, virtual actors and restartable actors move, its tasks finish; then it leaves",
    )
    drain.add_argument("node", type=_node, metavar="NODE", help="the node's number, as `nexus status` shows it")
    drain.add_argument("--deadline", type=float, default=60.0, help="seconds to wait for what runs there (default 60)")
    drain.add_argument("--no-wait", action="store_true", help="return once the drain started, not once the node has left")
    add_head_options(drain)
    drain.set_defaults(func=clear_errors(_drain))
