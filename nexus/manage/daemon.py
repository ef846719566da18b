"""The daemons ``nexus start`` runs (``python -m nexus.manage.daemon head|node ...``): the cluster's own
(:mod:`nexus.cluster.remote.daemon`), with the management port beside a head.

A head serves the REST ManagementPort (:mod:`.rest`) on ``--management-bind``
(loopback by default) and ``--management-port`` (0: any free one), and the
UART port (:mod:`.uart`: devices on bridges attached with ``manage=``), unless
``--no-management``. Its token is made fresh at each start and written with
the port's address to ``management.json`` in the head's folder (mode 0600,
in a folder of mode 0700), and alone to ``management.token`` (for a
Prometheus scrape's ``credentials_file``); the state file names the first,
never the token.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..cluster.remote.daemon import _log, build_parser
from ..cluster.remote.daemon import main as run_daemon
from ..cluster.remote.files import write_private

__all__ = ["BARE_TOKEN_FILE", "TOKEN_FILE", "main"]

TOKEN_FILE = "management.json"
BARE_TOKEN_FILE = "management.token"


def _options(head: argparse.ArgumentParser) -> None:
    head.add_argument("--management-bind", default="127.0.0.1")
    head.add_argument("--management-port", type=int, default=0)
    head.add_argument("--no-management", action="store_true")


def _serve(runtime: Any, service: Any, folder: Path, args: argparse.Namespace) -> tuple[dict[str, Any], Callable[[], None]]:
    if args.no_management:
        return {}, lambda: None
    from ..cluster import session
    from .port import Commands
    from .rest import RestPort
    from .scrape import ClusterMetrics
    from .uart import UartPort

    session.set_current(runtime)  # (the commands use the state API, on the head's own cluster)
    token = secrets.token_urlsafe(32)
    log = folder / "head.log"  # (where nexus start sends the head's output; not with --block: a terminal's then)
    try:
        out, kept = os.fstat(2), os.stat(log)
        log_path = log if (out.st_dev, out.st_ino) == (kept.st_dev, kept.st_ino) else None
    except OSError:
        log_path = None
    commands = Commands(runtime, service, log_path)
    uart = UartPort(commands)  # (what devices on bridges ask: see .uart)
    metrics = ClusterMetrics(runtime, service)
    metrics.start()
    port = RestPort(commands, token, args.management_bind, args.management_port, log=_log, metrics=metrics)
    shown = "127.0.0.1" if args.management_bind in ("0.0.0.0", "", "*") else args.management_bind
    where = f"[{shown}]:{port.port}" if ":" in shown else f"{shown}:{port.port}"
    path, bare = folder / TOKEN_FILE, folder / BARE_TOKEN_FILE
    try:
        write_private(str(path), {"address": where, "token": token})
        write_private(str(bare), token)  # (the token alone: what Prometheus's credentials_file reads)
    except BaseException:
        port.close()
        raise
    _log(f"nexus head: the management port listens on {args.management_bind}:{port.port}")

    def close() -> None:
        port.close()
        uart.close()
        metrics.close()
        for made in (path, bare):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(made)

    return {"management": where, "management_file": str(path)}, close


def main(argv: Sequence[str] | None = None) -> int:
    return run_daemon(argv, serving=_serve, parser=build_parser(_options))


if __name__ == "__main__":
    sys.exit(main())
