"""``nexus dump``: a diagnostics bundle of a running cluster, as one .tar.gz made in the head's process.

It holds ``versions.json`` (Python, the platform, Nexus and the libraries it
uses), ``config.json`` (the head's tunables), ``membership.json`` (the nodes
as the head sees them), ``state.json`` (workers, actors, tasks by state and
recently, the summary, the management port's counts), ``store.json`` (the
object store's map: every object, where it lives, its size and refs),
``events.json`` (the recent events, as ``nexus.observe.timeline`` shows
them), ``metrics.json`` (the counts at a glance: work by state, the store's
use, messages and channels dropped, the management port's requests), ``stacks.txt`` (every thread's Python stack in the head, and in
every worker of every node: each worker prints its own on SIGUSR2, which its
node's agent sends on the head's word, and its output comes to the head's
log) and ``head.log`` (the log's last MiB).
"""

from __future__ import annotations

import io
import json
import platform
import sys
import tarfile
import threading
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["bundle"]

LIBRARIES = ("pyzmq", "cloudpickle", "flatbuffers", "cbor2", "pyserial", "click", "aiohttp", "etcd3gw", "prometheus-client", "ipywidgets")
LOG_TAIL = 1 << 20
STACKS_WAIT = 10.0  # seconds at most for the workers' stacks to reach the head's log (a node's come a beat at a time)


def bundle(commands: Any, log_path: Path | None) -> bytes:
    """The bundle's bytes (a gzip'd tar)."""
    from .. import observe, state
    from .._version import __version__

    rt, service = commands.runtime, commands.service
    offset = log_path.stat().st_size if log_path is not None and log_path.exists() else 0
    _ask_for_stacks(rt, service)
    started = time.monotonic()
    parts: dict[str, Any] = {
        "versions.json": {
            "nexus": __version__,
            "python": sys.version,
            "platform": platform.platform(),
            "libraries": {name: _version(name) for name in LIBRARIES},
        },
        "config.json": _plain(rt.config),
        "membership.json": commands.nodes(),
        "state.json": {
            "summary": state.summary(),
            "workers": state.as_dicts(state.list_workers()),
            "actors": state.as_dicts(state.list_actors()),
            "tasks": state.as_dicts(state.list_tasks(limit=5000)),
        },
        "metrics.json": {"summary": state.summary(), "ports": commands.ports, "peers_refused": service.refused},
        "store.json": state.as_dicts(state.list_objects(limit=100_000)),
    }
    try:
        parts["events.json"] = observe.timeline()
    except Exception as exc:  # (a cluster started with observe=False records none)
        parts["events.json"] = {"error": str(exc)}
    expected = {w.name for w in state.list_workers() if w.alive}
    stacks = _own_stacks() + _workers_stacks(log_path, offset, expected, started + STACKS_WAIT)
    out = io.BytesIO()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, value in parts.items():
            _add(tar, f"nexus-dump-{stamp}/{name}", json.dumps(value, indent=1, default=str).encode(), stamp)
        _add(tar, f"nexus-dump-{stamp}/stacks.txt", stacks.encode(), stamp)
        if log_path is not None and log_path.exists():
            with log_path.open("rb") as f:
                f.seek(max(0, log_path.stat().st_size - LOG_TAIL))
                _add(tar, f"nexus-dump-{stamp}/head.log", f.read(), stamp)
    return out.getvalue()


def _ask_for_stacks(rt: Any, service: Any) -> None:
    """Each worker prints its stacks: this host's are signalled here, each node's by its agent."""
    import os

    from ..cluster.worker.main import STACKS_SIGNAL

    for w in rt.every_worker_record():
        if w.alive and w.pid:
            try:
                os.kill(w.pid, STACKS_SIGNAL)
            except (ProcessLookupError, PermissionError):
                pass
    for node in service.nodes_view():
        if node["alive"] and not node["head"]:
            service.tell_node(node["node_id"], "stacks")


def _own_stacks() -> str:
    names = {t.ident: t.name for t in threading.enumerate()}
    lines = ["== the head's process =="]
    for ident, frame in sys._current_frames().items():
        lines.append(f"Thread {names.get(ident, ident)} (most recent call last):")
        lines.extend(line.rstrip() for line in traceback.format_stack(frame))
    return "\n".join(lines) + "\n"


def _workers_stacks(log_path: Path | None, offset: int, expected: set[str], deadline: float) -> str:
    """The lines the workers printed to the head's log since ``offset``: their stacks, by worker (waited for until
    each of ``expected`` printed its own, or ``deadline``; those that did not are named)."""
    if log_path is None or not log_path.exists():
        return "\n== the workers: the head keeps no log here ==\n"
    while True:
        with log_path.open("rb") as f:
            f.seek(offset)
            text = f.read(8 << 20).decode(errors="replace")
        kept = [line for line in text.splitlines() if line.startswith("(") and ") " in line]
        printed = {line[1:].split(" ", 1)[0] for line in kept if "(most recent call first)" in line}
        if expected <= printed or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    missing = f"\n(no stacks came from {', '.join(sorted(expected - printed))})" if expected - printed else ""
    return "\n== the workers (each line named by worker, pid and host) ==\n" + "\n".join(kept) + missing + "\n"


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _plain(value: Any) -> Any:
    import dataclasses

    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else value


def _add(tar: tarfile.TarFile, name: str, data: bytes, _stamp: str) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
    tar.addfile(info, io.BytesIO(data))
