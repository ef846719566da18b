"""The ManagementPort: one set of operator commands, served by ports (REST/JSON on the head, :mod:`.rest`; CBOR
over a device bridge's serial line, :mod:`.uart`).

A command comes in as its name and a mapping of arguments; a response goes
out as a mapping (``{"ok": true, "result": ...}`` or ``{"ok": false,
"error": {"status": 400, "message": ...}}``). :class:`Commands` runs them
against the head's own cluster, in the head's process: ``status`` (as ``ray
status`` says it: nodes, resources used and total, actors and tasks by
state, the object store, devices; ``brief``: a few counts), ``list`` (nodes, workers, actors, tasks,
objects, devices; filters ``key=value`` or ``key!=value``, the fields to keep, a limit),
``kill``, ``cancel``, ``drain``. A port picks its serializer
(:data:`SERIALIZERS`: JSON or CBOR) and its transport; bad input of any
kind is a :class:`CommandError` with a status (400 malformed, 404 unknown),
never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

__all__ = ["SERIALIZERS", "CommandError", "Commands", "ManagementPort", "PortSerializer"]

LIST_KINDS = ("nodes", "workers", "actors", "tasks", "objects", "devices")
LIST_LIMIT = 10_000  # most records one list answers
LOG_WINDOW = 4 << 20  # most bytes of the head's log one logs answer reads


class CommandError(Exception):
    """A command that cannot be run as asked: ``status`` says how (HTTP's: 400, 404, 409), the message what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class PortSerializer(Protocol):
    """How a port writes its responses and reads its commands (JSON, CBOR): bytes and a content type."""

    content_type: str

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class _Json:
    content_type = "application/json"

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, default=str).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


class _Cbor:
    """The messaging layer's CBOR codec (its decoder refuses the tags that could be slow or make objects)."""

    content_type = "application/cbor"

    def dumps(self, value: Any) -> bytes:
        from ..messaging.serializers import CborSerializer

        return CborSerializer().dumps(json.loads(json.dumps(value, default=str)))  # (as the JSON port would say it)

    def loads(self, data: bytes) -> Any:
        from ..messaging.serializers import CborSerializer

        return CborSerializer().loads(data)


SERIALIZERS: dict[str, PortSerializer] = {"json": _Json(), "cbor": _Cbor()}


class ManagementPort(Protocol):
    """A channel commands come in on: it authenticates its peer, decodes with its serializer, runs the command on
    :class:`Commands` and answers; ``close`` stops it."""

    name: str
    serializer: PortSerializer

    def close(self) -> None: ...


class Commands:
    """The operator's commands, run in the head's process on its cluster (``runtime``) and membership (``service``)."""

    READ_ONLY = frozenset({"status", "list", "logs", "timeline", "dump"})

    def __init__(self, runtime: Any, service: Any, log_path: Path | None = None) -> None:
        self.runtime, self.service, self.log_path = runtime, service, log_path
        self.ports: dict[str, dict[str, int]] = {}  # each port's counts of requests: served, refused (401, 403), malformed
        self.table: dict[str, Callable[[Mapping[str, Any]], Any]] = {
            "status": self.status,
            "list": self.list,
            "kill": self.kill,
            "cancel": self.cancel,
            "drain": self.drain,
            "logs": self.logs,
            "timeline": self.timeline,
            "dump": self.dump,
        }

    def run(self, name: str, args: Any) -> Any:
        """Run command ``name`` on ``args`` (a mapping); CommandError when either is wrong."""
        command = self.table.get(name) if isinstance(name, str) else None
        if command is None:
            raise CommandError(404, f"no command {name!r}: the commands are {', '.join(self.table)}")
        if not isinstance(args, Mapping):
            raise CommandError(400, f"a command's arguments are an object of names to values, not {type(args).__name__}")
        try:
            return command(args)
        except CommandError:
            raise
        except ValueError as exc:  # (what the cluster says of bad arguments; anything else is a bug: a 500, logged)
            raise CommandError(400, f"{name}: {exc}") from None

    # -- the commands -------------------------------------------------------------------------------------------

    def status(self, args: Mapping[str, Any]) -> dict[str, Any]:
        from .. import state

        _only(args, ("brief",), "status")
        brief = args.get("brief", False)
        if not isinstance(brief, bool):
            raise CommandError(400, f"status: brief is true or false, not {brief!r}")
        rt, nodes = self.runtime, self.nodes()
        total, free = rt.cluster_resources(False), rt.cluster_resources(True)
        if brief:  # (a few dozen bytes: what a small device on the UART port can take)
            summary = state.summary()
            cpu = total.get("CPU", 0.0)
            return {
                "alive": sum(1 for n in nodes if n["alive"]),
                "nodes": len(nodes),
                "cpu": [round(cpu - free.get("CPU", 0.0), 3), cpu],
                "actors": summary["actors"],
                "tasks": summary["tasks"],
            }
        return {
            "nodes": nodes,
            "alive": sum(1 for n in nodes if n["alive"]),
            "resources": {"total": total, "used": {k: round(v - free.get(k, 0.0), 6) for k, v in total.items()}},
            "summary": state.summary(),
            "devices": state.as_dicts(state.list_devices()),
            "refused": self.service.refused,
            "malformed": self.service.malformed,
            "ports": {name: dict(counts) for name, counts in self.ports.items()},
        }

    def nodes(self) -> list[dict[str, Any]]:
        return [{**n, "node_id": f"{n['node_id']:06x}"} for n in self.service.nodes_view()]

    def list(self, args: Mapping[str, Any]) -> list[dict[str, Any]]:
        _only(args, ("kind", "filters", "limit", "fields"), "list")
        kind = args.get("kind")
        if kind not in LIST_KINDS:
            raise CommandError(400, f"list: kind is one of {', '.join(LIST_KINDS)}, not {kind!r}")
        limit = args.get("limit", 1000)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= LIST_LIMIT:
            raise CommandError(400, f"list: limit is a whole number from 1 to {LIST_LIMIT}, not {limit!r}")
        filters = _filters(args.get("filters", []))
        if kind == "nodes":
            rows = self.nodes()
        else:
            from .. import state

            lister = getattr(state, f"list_{kind}")
            rows = state.as_dicts(lister(limit=LIST_LIMIT) if kind in ("tasks", "objects") else lister())
        for key, op, value in filters:
            if rows and key not in rows[0]:
                raise CommandError(400, f"list {kind}: no field {key!r} to filter on (they are {', '.join(rows[0])})")
            rows = [r for r in rows if (str(r.get(key)).lower() == value.lower()) == (op == "=")]
        fields = args.get("fields")
        if fields is not None:  # (only these columns: what a serial line or a script wants)
            if isinstance(fields, str):
                fields = [f.strip() for f in fields.split(",")]
            if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
                raise CommandError(400, f"list: fields are the names of the columns to keep, not {fields!r}")
            missing = [f for f in fields if rows and f not in rows[0]]
            if missing:
                raise CommandError(400, f"list {kind}: no field {missing[0]!r} (they are {', '.join(rows[0])})")
            rows = [{f: r.get(f) for f in fields} for r in rows]
        return rows[:limit]

    def kill(self, args: Mapping[str, Any]) -> dict[str, Any]:
        _only(args, ("actor", "namespace", "no_restart"), "kill")
        actor, no_restart = args.get("actor"), args.get("no_restart", True)
        if not isinstance(actor, str) or not actor:
            raise CommandError(400, "kill: actor is the actor's id (hex, as `nexus list actors` shows it) or its name")
        if not isinstance(no_restart, bool):
            raise CommandError(400, f"kill: no_restart is true or false, not {no_restart!r}")
        rt = self.runtime
        found = _actor_id(rt, actor)
        if found is not None and rt.actors[found].dead is not None:
            raise CommandError(409, f"kill: actor {actor} is dead already ({rt.actors[found].dead})")
        if found is None:
            namespace = args.get("namespace")
            if namespace is not None and not isinstance(namespace, str):
                raise CommandError(400, f"kill: namespace is a string, not {namespace!r}")
            try:
                found = rt.get_actor(actor, namespace)[0]
            except ValueError:
                raise CommandError(404, f"kill: no actor with id or name {actor!r} (`nexus list actors` lists them)") from None
        rt.kill(found, no_restart)
        return {"actor_id": f"{found:016x}", "killed": True}

    def cancel(self, args: Mapping[str, Any]) -> dict[str, Any]:
        _only(args, ("task", "force"), "cancel")
        task, force = args.get("task"), args.get("force", False)
        if not isinstance(force, bool):
            raise CommandError(400, f"cancel: force is true or false, not {force!r}")
        task_id = _hex(task, "cancel: task is the task's id (hex, as `nexus list tasks` shows it)")
        rt = self.runtime
        with rt.lock:
            record = rt.tasks.running.get(task_id) or next((t for t in rt.tasks.queue if t.task_id == task_id), None)
            record = record or rt.tasks.waiting.get(task_id)
            result = record.result_ids[0] if record is not None and record.result_ids else None
        if result is None:
            raise CommandError(404, f"cancel: no task {task!r} queued or running (it may have ended; `nexus list tasks`)")
        return {"task_id": f"{task_id:x}", "cancelled": bool(rt.cancel(result, force))}

    def drain(self, args: Mapping[str, Any]) -> dict[str, Any]:
        _only(args, ("node", "deadline"), "drain")
        node = _hex(args.get("node"), "drain: node is the node's number (hex, as `nexus status` shows it)")
        deadline = args.get("deadline", 60.0)
        started = self.service.drains.start(node, deadline, "the management port")
        return {**started, "node_id": f"{started['node_id']:06x}"}

    def logs(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """What a worker (or an actor's worker) printed, as the head's log has it: the last ``tail`` lines, or
        those after ``since`` (the ``next`` of an earlier answer: ``nexus logs --follow`` asks again with it)."""
        _only(args, ("worker", "tail", "since"), "logs")
        who, tail, since = args.get("worker"), args.get("tail", 100), args.get("since")
        if not isinstance(who, str) or not who:
            raise CommandError(400, "logs: worker is a worker's name (`nexus list workers`), or an actor's id or name")
        if isinstance(tail, bool) or not isinstance(tail, int) or not 0 < tail <= LIST_LIMIT:
            raise CommandError(400, f"logs: tail is a whole number from 1 to {LIST_LIMIT}, not {tail!r}")
        if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
            raise CommandError(400, f"logs: since is the next of an earlier answer (a whole number), not {since!r}")
        name = self._worker_of(who)
        if self.log_path is None or not self.log_path.exists():
            return {"worker": name, "lines": [], "next": 0}
        size = self.log_path.stat().st_size
        start = max(0, size - LOG_WINDOW) if since is None else min(since, size)
        with self.log_path.open("rb") as f:
            f.seek(start)
            data = f.read(LOG_WINDOW)
        end = start + (data.rfind(b"\n") + 1 if since is not None else len(data))  # (a line not ended: the next answer's)
        prefix = f"({name} pid="
        lines = [line for line in data[: end - start].decode(errors="replace").splitlines() if line.startswith(prefix)]
        return {"worker": name, "lines": lines[-tail:] if since is None else lines, "next": end}

    def _worker_of(self, who: str) -> str:
        from .. import state

        workers = {w.name for w in state.list_workers()}
        if who in workers:
            return who
        for actor in state.list_actors():
            if who in (actor.actor_id, actor.name) and actor.worker:
                return actor.worker
        raise CommandError(404, f"logs: no worker or actor {who!r} (`nexus list workers`, `nexus list actors`)")

    def timeline(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The cluster's recent events as a Chrome trace (open it in Perfetto or chrome://tracing)."""
        from .. import observe

        _only(args, (), "timeline")
        try:
            return observe.timeline()
        except RuntimeError as exc:  # (a cluster that records no events)
            raise CommandError(409, f"timeline: {exc}") from None

    def dump(self, args: Mapping[str, Any]) -> bytes:
        """A diagnostics bundle (.tar.gz; see :mod:`.dump`)."""
        from .dump import bundle

        _only(args, (), "dump")
        return bundle(self, self.log_path)


def _only(args: Mapping[str, Any], known: tuple[str, ...], command: str) -> None:
    unknown = sorted(str(k) for k in args if k not in known)
    if unknown:
        takes = f"it takes {', '.join(known)}" if known else "it takes none"
        raise CommandError(400, f"{command}: unknown argument(s) {', '.join(unknown)}; {takes}")


def _hex(value: Any, what: str) -> int:
    try:
        number = int(value, 16) if isinstance(value, str) and value.strip() else -1
    except ValueError:
        number = -1
    if number <= 0:
        raise CommandError(400, f"{what}, not {value!r}")
    return number


def _filters(given: Any) -> list[tuple[str, str, str]]:
    """``["state=alive", "name!=x"]`` as (key, op, value) triples; CommandError saying the form."""
    if isinstance(given, str):
        given = [given]
    if not isinstance(given, list) or not all(isinstance(f, str) for f in given):
        raise CommandError(400, f"list: filters are strings KEY=VALUE or KEY!=VALUE, not {given!r}")
    out = []
    for text in given:
        key, op, value = text.partition("!=") if "!=" in text else text.partition("=")
        if not op or not key:
            raise CommandError(400, f"list: a filter is KEY=VALUE or KEY!=VALUE, not {text!r}")
        out.append((key.strip(), op, value.strip()))
    return out


def _actor_id(rt: Any, text: str) -> int | None:
    try:
        actor_id = int(text, 16)
    except ValueError:
        return None
    with rt.lock:
        return actor_id if actor_id in rt.actors else None
