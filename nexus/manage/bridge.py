"""``nexus bridge PORT``: a process that holds a device's serial line for a running cluster.

It attaches to the cluster as a driver (the head started on this host, or
``--address`` and ``--key``), runs the bridge actor on this host's node, says
when a device comes and goes and what actors it registers, and lets the
device go when it is stopped (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

import click

__all__ = ["add_commands"]


def _say(facts: dict[str, Any]) -> str:
    if facts["key"] is None:
        return f"waiting for a device on {facts['port']}" + (f" ({facts['error']})" if facts["error"] else "")
    names = ", ".join(f"device:{facts['key']}/{name}" for name in sorted(facts["actors"])) or "none yet"
    return f"device {facts['key']}: session {facts['state']}; actors: {names}"


def _bridge(args: argparse.Namespace) -> int:
    import nexus
    from nexus.cluster.bridge.actor import attach_bridge

    try:
        nexus.init(address=args.address, key=args.key)
    except Exception as exc:
        print(f"nexus bridge: cannot attach to the cluster: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        try:
            bridge = attach_bridge(args.port, args.baud, node=args.node, manage=args.manage)
        except Exception as exc:
            print(f"nexus bridge: {exc}", file=sys.stderr)
            return 1
        print(f"Nexus bridge on {args.port} at {args.baud} baud, as {bridge.name}.", flush=True)
        said = ""
        while not stop.wait(0.2):
            try:
                now = _say(bridge.describe())
            except Exception as exc:
                print(f"nexus bridge: the bridge is gone ({exc})", file=sys.stderr)
                return 1
            if now != said:
                print(now, flush=True)
                said = now
        bridge.close()
        print(f"Bridge on {args.port} closed.", flush=True)
        return 0
    finally:
        nexus.shutdown()


def add_commands(cli: click.Group) -> None:
    @cli.command("bridge", short_help="Hold a device's serial line for the cluster.")
    @click.argument("port", metavar="PORT")
    @click.option("--baud", type=int, default=115200, show_default=True, help="The line's rate.")
    @click.option("--address", default="auto", metavar="HOST:PORT", help="The head (default: the one started on this host).")
    @click.option("--key", default=None, metavar="FILE", help="The head's node.key (default: $NEXUS_KEY, or the local head's).")
    @click.option("--node", default=None, metavar="NODEID", help="The node on this machine (when the cluster cannot tell).")
    @click.option(
        "--manage",
        type=click.Choice(["read", "all"]),
        default=None,
        help="Let the device send operator commands to nexus:manage: read (status, list, logs) or all (kill, cancel, drain too).",
    )
    def bridge(**options: Any) -> None:
        """Hold the serial line PORT (/dev/ttyACM0, /dev/ttyUSB0, a pty) for the cluster: the device's actors become
        device:<key>/<name>, until Ctrl-C."""
        sys.exit(_bridge(argparse.Namespace(**options)))
