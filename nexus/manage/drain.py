"""``nexus drain NODE``: drain a node of a running cluster (see :mod:`nexus.cluster.remote.drain`), and wait until
it has left.

NODE is its number as ``nexus status`` and ``nexus.nodes()`` show it (six hex digits; leading zeros may go).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import click

from .start import clear_errors_named, head_link, head_options

__all__ = ["add_commands"]


class _Node(click.ParamType):
    name = "node"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        try:
            node = int(value, 16)
        except ValueError:
            self.fail(f"a node is its number as `nexus status` shows it (hex, such as 000001), not {value!r}", param, ctx)
        if node <= 0:
            self.fail(f"a node's number is positive, not {value!r}", param, ctx)
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


def add_commands(cli: click.Group) -> None:
    @cli.command("drain", short_help="Drain a node, then it leaves.")
    @click.argument("node", type=_Node(), metavar="NODE")
    @click.option("--deadline", type=float, default=60.0, show_default=True, help="Seconds to wait for what runs there.")
    @click.option("--no-wait", is_flag=True, help="Return once the drain started, not once the node has left.")
    @head_options
    @clear_errors_named("drain")
    def drain(args: argparse.Namespace) -> int:
        """Drain NODE (its number as `nexus status` shows it): nothing new goes there, virtual actors and restartable
        actors move, its tasks finish; then it leaves."""
        return _drain(args)
