"""``nexus list``, ``kill``, ``cancel``, ``logs``, ``timeline``, ``dump``: commands on the head's REST management
port (:mod:`.client`).

``--json`` prints what the port answered, for scripts; without it, a table.
An unreachable port or a refused token ends in one line saying so, exit 1.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from .client import ManagementError, request
from .port import LIST_KINDS

__all__ = ["add_commands"]

# The columns a table shows of each kind (--json has every field)
COLUMNS = {
    "nodes": ("node_id", "host", "state", "alive", "workers", "resources"),
    "workers": ("name", "node_id", "kind", "pid", "alive", "actor", "tasks_in_flight"),
    "actors": ("actor_id", "class_name", "name", "state", "worker", "pid", "restarts", "pending_calls"),
    "tasks": ("task_id", "name", "kind", "state", "worker", "duration_s", "waiting_for"),
    "objects": ("object_id", "nbytes", "where", "refs", "pins", "node_id"),
    "devices": ("key", "bridge", "state", "actors"),
}


def port_options(command: Any) -> Any:
    command = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(command)
    command = click.option("--token-file", default=None, metavar="FILE", help="The head's management.json (default: this host's).")(command)
    return click.option("--management", default=None, metavar="HOST:PORT", help="The management port (default: this host's).")(command)


def _ask(name: str, command: str, args: dict[str, Any], options: dict[str, Any], timeout: float = 10.0) -> Any:
    try:
        return request(command, args, address=options["management"], token_file=options["token_file"], timeout=timeout)
    except ManagementError as exc:
        click.echo(f"nexus {name}: {exc}", err=True)
        sys.exit(1)


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}"
        if isinstance(value, dict):
            return ", ".join(f"{v:g} {k}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items())
        return "-" if value is None else str(value)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(line[i]) for line in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v[:60].ljust(w) for v, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(line.rstrip() for line in lines)


def _show(result: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    click.echo(json.dumps(result, indent=1, default=str) if as_json else text(result))


def add_commands(cli: click.Group) -> None:
    @cli.command("list", short_help="List the cluster's nodes, workers, actors, tasks, objects or devices.")
    @click.argument("kind", type=click.Choice(LIST_KINDS))
    @click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE", help="Only those whose KEY is (or != is not) VALUE.")
    @click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True, help="At most this many.")
    @click.option("--fields", default=None, metavar="A,B,...", help="Only these columns (any field of --json's).")
    @port_options
    def list_(kind: str, filters: tuple[str, ...], limit: int, fields: str | None, **options: Any) -> None:
        """List the cluster's KIND as its head sees them: nodes, workers, actors, tasks (newest first), objects,
        devices. Filters: --filter state=alive --filter name!=x."""
        args: dict[str, Any] = {"kind": kind, "filters": list(filters), "limit": limit}
        if fields is not None:
            args["fields"] = fields
        rows = _ask("list", "list", args, options)
        columns = COLUMNS[kind] if fields is None else tuple(f.strip() for f in fields.split(","))
        _show(rows, options["as_json"], lambda r: _table(r, columns) if r else f"no {kind}")

    @cli.command("kill", short_help="Kill an actor.")
    @click.argument("actor")
    @click.option("--namespace", default=None, help="The namespace of a named actor.")
    @click.option("--restart", is_flag=True, help="Let it restart (if its max_restarts allows), as nexus.kill(no_restart=False).")
    @port_options
    def kill(actor: str, namespace: str | None, restart: bool, **options: Any) -> None:
        """Kill ACTOR: its id (as `nexus list actors` shows it) or its name. Its pending calls fail with ActorDiedError."""
        args: dict[str, Any] = {"actor": actor, "no_restart": not restart}
        if namespace is not None:
            args["namespace"] = namespace
        result = _ask("kill", "kill", args, options)
        _show(result, options["as_json"], lambda r: f"killed actor {r['actor_id']}")

    @cli.command("cancel", short_help="Cancel a task.")
    @click.argument("task")
    @click.option("--force", is_flag=True, help="Kill its worker if it runs (it is not retried).")
    @port_options
    def cancel(task: str, force: bool, **options: Any) -> None:
        """Cancel TASK (its id, as `nexus list tasks` shows it): a queued one never runs, a running one is interrupted
        (TaskCancelledError), with --force its worker is killed."""
        result = _ask("cancel", "cancel", {"task": task, "force": force}, options)
        _show(result, options["as_json"], lambda r: f"task {r['task_id']}: {'cancelled' if r['cancelled'] else 'not cancelled (it ended)'}")

    @cli.command("logs", short_help="What a worker or an actor printed.")
    @click.argument("worker")
    @click.option("--tail", type=click.IntRange(1, 10_000), default=100, show_default=True, help="The last this many lines.")
    @click.option("--follow", "-f", is_flag=True, help="Then go on printing what comes, until Ctrl-C.")
    @port_options
    def logs(worker: str, tail: int, follow: bool, **options: Any) -> None:
        """What WORKER printed (its name, as `nexus list workers` shows it, or an actor's id or name), as the head's
        log has it: this host's workers and every node's."""
        answer = _ask("logs", "logs", {"worker": worker, "tail": tail}, options)
        if options["as_json"] and not follow:
            _show(answer, True, str)
            return
        for line in answer["lines"]:
            click.echo(line)
        try:
            while follow:
                time.sleep(0.5)
                answer = _ask("logs", "logs", {"worker": worker, "since": answer["next"]}, options)
                for line in answer["lines"]:
                    click.echo(line)
        except KeyboardInterrupt:  # (Ctrl-C: how --follow ends)
            pass

    @cli.command("timeline", short_help="Write the cluster's recent events as a Chrome trace.")
    @click.argument("file", type=click.Path(dir_okay=False))
    @port_options
    def timeline(file: str, **options: Any) -> None:
        """Write the cluster's recent events to FILE as a Chrome trace (open it in https://ui.perfetto.dev)."""
        trace = _ask("timeline", "timeline", {}, options)
        with open(file, "w") as f:
            json.dump(trace, f)
        click.echo(f"wrote {len(trace.get('traceEvents', []))} events to {file}")

    @cli.command("dump", short_help="Write a diagnostics bundle (.tar.gz).")
    @click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="The file (default: nexus-dump-TIME.tar.gz).")
    @port_options
    def dump(output: str | None, **options: Any) -> None:
        """Write a diagnostics bundle of the cluster: versions, configuration, membership, state, the store's map,
        recent events, metrics, every worker's Python stacks and the head's log. It may hold what your tasks
        printed: it is written mode 0600."""
        from .dump import STACKS_WAIT

        data = _ask("dump", "dump", {}, options, timeout=STACKS_WAIT + 60)
        path = output or f"nexus-dump-{time.strftime('%Y%m%d-%H%M%S')}.tar.gz"
        temporary = f"{path}.{os.getpid()}.tmp"  # (made 0600, then put in place: an existing file's mode is not kept)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        click.echo(f"wrote the diagnostics bundle to {path} ({len(data) / 1024:.0f} KiB)")
