"""The UART ManagementPort: an operator's commands from a device (or a console) on a bridge's serial line.

A device on a bridge calls out to the reserved actor name ``nexus:manage``,
the command as the method and one CBOR map of its arguments::

    answer = client.call("nexus:manage", "status", {"brief": True})
    client.call("nexus:manage", "list", {"kind": "actors", "filter": ["state=alive"], "limit": 3})

The call goes on the bridge's reliable stream as any call out (OUTCALL, its
answer an OUTREPLY: CBOR, never a pickle), from the bridge's worker to the
head, where this port runs it on the head's :class:`~.port.Commands` and
counts it (``status`` shows ``ports.uart``). The line is the credential: a
bridge takes no command from its device unless it was attached with
``manage="read"`` (the commands that change nothing: status, list, logs) or
``manage="all"`` (kill, cancel, drain too); ``dump`` and ``timeline`` are
files, not for a serial line. An answer must fit the session's MTU: ask
``status`` with ``brief``, and ``list`` with a ``limit``. A refused or
malformed command is an error answer to the device (its text says why and
what to do), never a failure of the bridge or of the head.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .port import SERIALIZERS, CommandError, Commands

__all__ = ["LEVELS", "UartPort"]

LEVELS = ("read", "all")  # what a bridge's device may ask (attach_bridge(manage=...))
_NOT_ON_A_LINE = frozenset({"dump", "timeline"})


class UartPort:
    """The commands devices send through their bridges, run on ``commands`` (installed on the head's runtime)."""

    name = "uart"
    serializer = SERIALIZERS["cbor"]

    def __init__(self, commands: Commands) -> None:
        self.commands = commands
        self.counts = {"served": 0, "forbidden": 0, "malformed": 0, "failed": 0}
        commands.ports[self.name] = self.counts
        commands.runtime.management = self.answer

    def answer(self, command: Any, args: Any, allowed: Any) -> Any:
        """Run ``command`` for a device whose bridge allows ``allowed``; an exception with a message if not."""
        if allowed not in LEVELS:
            self.counts["forbidden"] += 1
            raise PermissionError(f"a bridge's device may manage at level 'read' or 'all', not {allowed!r}")
        if command in _NOT_ON_A_LINE:
            self.counts["malformed"] += 1
            raise ValueError(f"{command} writes a file: ask it of the REST port (`nexus {command}`), not over a serial line")
        if allowed == "read" and command in self.commands.table and command not in self.commands.READ_ONLY:
            self.counts["forbidden"] += 1
            raise PermissionError(f"{command} changes the cluster; this bridge may only read (manage='all' may)")
        if args is None:
            args = {}
        if isinstance(args, Mapping) and "filter" in args:  # (as the REST port's query names it)
            args = {**{k: v for k, v in args.items() if k != "filter"}, "filters": args["filter"]}
        try:
            result = self.commands.run(command, args)
        except CommandError as exc:
            self.counts["malformed" if exc.status in (400, 404) else "failed"] += 1
            raise ValueError(str(exc)) from None
        self.counts["served"] += 1
        return json.loads(json.dumps(result, default=str))  # (plain values, as the REST port would say them)

    def close(self) -> None:
        if self.commands.runtime.management == self.answer:
            self.commands.runtime.management = None
