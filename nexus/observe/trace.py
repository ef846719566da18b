"""The cluster's recent events as a Chrome / Perfetto trace (the trace-event JSON format).

A row per process (the driver, each worker; grouped by host when the
workers are on several), a span per task or actor call
with nested spans for reading the arguments, running, and writing the
results; on the submitter's row a span for the submission; flow arrows from
each submission to the run it caused. Open the file in https://ui.perfetto.dev
or chrome://tracing.
"""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["chrome_trace"]


def _us(ns: int) -> float:
    return ns / 1000.0


def chrome_trace(raw: list[tuple[Any, ...]], driver_pid: int | None = None, hosts: dict[str, str] | None = None) -> dict[str, Any]:
    """Trace-event JSON (as a dict) for the events in ``raw`` (what the driver recorded, oldest first).

    ``hosts``: worker name -> its host. With workers on several hosts, each row is named with its host and
    the rows are sorted by host; a row's id is then the host's number times 10**7 plus the pid (pids of
    different hosts may be the same).
    """
    driver_pid = driver_pid or os.getpid()
    hosts = hosts or {}
    names = sorted(set(hosts.values()))
    several = len(names) > 1
    submitted: dict[int, tuple[Any, ...]] = {}
    finished: list[tuple[Any, ...]] = []
    pids: dict[str, int] = {"driver": driver_pid}
    for event in raw:
        kind = event[0]
        if kind == "submitted":
            submitted[event[2]] = event
        elif kind == "finished":
            finished.append(event)
            pids[event[3]] = event[4]
        elif kind == "worker":
            pids[event[2]] = event[3]
    out: list[dict[str, Any]] = []
    rows: dict[str, int] = {}  # process -> its row's id
    for name, pid in pids.items():
        host = hosts.get(name)
        row = rows[name] = (names.index(host) + 1) * 10**7 + pid if several and host in names else pid
        label = f"{name} on {host} (pid {pid})" if several and host else f"{name} (pid {pid})"
        out.append({"ph": "M", "name": "process_name", "pid": row, "tid": 0, "args": {"name": label}})
        out.append({"ph": "M", "name": "process_sort_index", "pid": row, "tid": 0, "args": {"sort_index": 0 if name == "driver" else row}})
    for _, _ts, task_id, worker, _pid, start, ready, ran, end, ok, *_ in finished:
        pid = rows[worker]
        sub = submitted.get(task_id)
        name = sub[3] if sub else f"task {task_id:x}"
        what = sub[4] if sub else "task"
        args = {"id": f"{task_id:x}", "ok": ok, "worker": worker}
        if sub:
            args.update(trace=f"{sub[5]:x}", parent=f"{sub[6]:x}" if sub[6] else None, submitted_by=sub[7])
        out.append({"ph": "X", "name": name, "cat": what, "pid": pid, "tid": 0, "ts": _us(start), "dur": _us(end - start), "args": args})
        for label, a, b in (("read arguments", start, ready), ("run", ready, ran), ("write results", ran, end)):
            if b > a:
                out.append({"ph": "X", "name": label, "cat": "phase", "pid": pid, "tid": 0, "ts": _us(a), "dur": _us(b - a)})
        if sub is None:
            continue
        by, begin, at = sub[7], sub[8], sub[1]
        src = rows.get(by)
        if src is None:
            continue
        if begin:  # the driver measured its submission
            span = {"ph": "X", "name": f"submit {name}", "cat": "submit", "pid": src, "tid": 0, "ts": _us(begin)}
            out.append({**span, "dur": _us(max(at - begin, 1))})
            flow_at = begin + max(at - begin, 1) // 2
        else:
            flow_at = at
        # The id as a string: ids are 96-bit (node, process, counter) and a JSON number loses that (doubles)
        flow = f"{task_id:x}"
        out.append({"ph": "s", "name": "call", "cat": "flow", "id": flow, "pid": src, "tid": 0, "ts": _us(flow_at)})
        out.append({"ph": "f", "bp": "e", "name": "call", "cat": "flow", "id": flow, "pid": pid, "tid": 0, "ts": _us(start)})
    return {"traceEvents": out, "displayTimeUnit": "ns", "otherData": {"source": "nexus"}}


def write_trace(path: str, trace: dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(trace, f)
