"""``nexus start``, ``nexus stop``, ``nexus status``: a head and node agents that outlive notebooks.

``start`` runs the daemon (:mod:`nexus.cluster.remote.daemon`) in a session
of its own, waits until it wrote its state file (ready) or exited (its log
says why), and prints what to do next. ``stop`` stops what ``start`` started
on this host, for this user: nodes first (they say they leave), then the head.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..cluster.remote.daemon import add_common, head_folder, node_folder, process_start
from ..cluster.remote.files import home, private_folder

__all__ = ["add_commands"]

START_TIMEOUT = 30.0


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None


def _ours(state: dict[str, Any]) -> bool:
    """Whether the process a state file names still runs, as this user's (not another that reused its pid)."""
    pid = state["pid"]
    try:
        if os.stat(f"/proc/{pid}").st_uid != os.geteuid():
            return False
    except OSError:
        return False
    return state.get("started") == process_start(pid)


def _spawn(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "nexus.cluster.remote.daemon", *argv],
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            start_new_session=True,  # outlives this command and the terminal it ran in
            close_fds=True,
        )
    finally:
        os.close(fd)


def _wait_ready(proc: subprocess.Popen[bytes], state: Path, log_path: Path) -> dict[str, Any] | None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        data = _read_state(state)
        if data is not None and data["pid"] == proc.pid:
            return data
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    else:
        proc.kill()
        proc.wait()
    tail = log_path.read_text(errors="replace").strip().splitlines()[-5:] if log_path.exists() else []
    print("\n".join(tail) or f"the daemon exited with code {proc.returncode}", file=sys.stderr)
    return None


def _start(args: argparse.Namespace) -> int:
    common = []
    if args.num_cpus is not None:
        common += ["--num-cpus", str(args.num_cpus)]
    if args.resources:
        common += ["--resources", args.resources]
    if args.labels:
        common += ["--labels", *args.labels]
    if args.object_store_memory is not None:
        common += ["--object-store-memory", str(args.object_store_memory)]
    private_folder(home())
    if args.head == (args.address is not None):
        print("nexus start: say --head (start a head here) or --address HOST:PORT --key FILE (join one)", file=sys.stderr)
        return 2
    if args.head:
        return _start_head(args, common)
    if not args.key:
        print("nexus start: --address needs --key FILE (the node.key that `nexus start --head` made)", file=sys.stderr)
        return 2
    return _start_node(args, common)


def _start_head(args: argparse.Namespace, common: list[str]) -> int:
    folder = Path(private_folder(head_folder()))
    existing = _read_state(folder / "state.json")
    if existing is not None and _ours(existing):
        print(
            f"nexus start: a head runs here already (pid {existing['pid']}) at {existing['address']}; `nexus stop` first", file=sys.stderr
        )
        return 1
    argv = ["head", "--bind", args.bind, "--port", str(args.port), *common]
    if args.node_timeout is not None:
        argv += ["--node-timeout", str(args.node_timeout)]
    if args.membership is not None:
        argv += ["--membership", args.membership]
    if args.phi_threshold is not None:
        argv += ["--phi-threshold", str(args.phi_threshold)]
    if args.block:
        from ..cluster.remote.daemon import main

        return main(argv)
    log_path = folder / "head.log"
    state = _wait_ready(_spawn(argv, log_path), folder / "state.json", log_path)
    if state is None:
        return 1
    print(f"Nexus head started at {state['address']} (pid {state['pid']}, cluster {state['cluster']}).")
    print(f"The key file for nodes is {state['node_key']}: copy it (mode 0600) to each host that joins, then run there:")
    print(f"  nexus start --address {state['address']} --key {state['node_key']}")
    if args.bind == "127.0.0.1":
        print("(It listens on loopback only: `nexus start --head --bind 0.0.0.0` to take nodes of other hosts.)")
    return 0


def _start_node(args: argparse.Namespace, common: list[str]) -> int:
    folder = Path(private_folder(node_folder()))
    argv = ["node", "--address", args.address, "--key", os.path.abspath(args.key), *common]
    if args.block:
        from ..cluster.remote.daemon import main

        return main(argv)
    log_path = folder / f"node-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    proc = _spawn(argv, log_path)
    state = _wait_ready(proc, folder / f"node-{proc.pid}.json", log_path)
    if state is None:
        return 1
    print(f"Nexus node {state['node_id']} joined the head at {state['address']} (pid {state['pid']}).")
    return 0


def _stop(_args: argparse.Namespace) -> int:
    targets: list[tuple[str, Path, dict[str, Any]]] = []
    nodes = Path(private_folder(node_folder()))  # (this user's own, mode 0700: nobody else's state files are read)
    for path in sorted(nodes.glob("node-*.json")):
        data = _read_state(path)
        if data is not None:
            targets.append((f"node {data.get('node_id')}", path, data))
    head_state = Path(private_folder(head_folder())) / "state.json"
    data = _read_state(head_state)
    if data is not None:
        targets.append(("head", head_state, data))
    stopped = 0
    for what, path, state in targets:
        pid = state["pid"]
        if not _ours(state):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # left by a daemon that was killed: nothing to stop
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _ours(state) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _ours(state):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        print(f"stopped the {what} (pid {pid})")
        stopped += 1
    if not stopped:
        print("nothing to stop: no head or node started here by `nexus start`")
    return 0


def head_link(args: argparse.Namespace, command: str) -> tuple[Any, str] | int:
    """(a link to the head that ``--address`` and ``--key`` name, or the one started here; its address), or the
    exit code after saying why there is none."""
    from ..cluster.remote.agent import NodeLink
    from ..cluster.remote.keys import load_node_key

    address, key_path = args.address, args.key
    if address is None:
        state = _read_state(Path(private_folder(head_folder())) / "state.json")
        if state is None:
            print(f"nexus {command}: no head runs here; say --address HOST:PORT --key FILE", file=sys.stderr)
            return 1
        address, key_path = state["address"], key_path or state["node_key"]
    if key_path is None:
        print(f"nexus {command}: --address needs --key FILE", file=sys.stderr)
        return 2
    return NodeLink(load_node_key(key_path), address), address


def add_head_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default=None, metavar="HOST:PORT", help="the head (default: the one started here)")
    parser.add_argument("--key", default=None, metavar="FILE", help="a node.key file of that head")
    parser.add_argument("--timeout", type=float, default=5.0, help="how long to wait for the head's answer (seconds)")


def _status(args: argparse.Namespace) -> int:
    from ..cluster.remote.agent import HeadUnreachableError, KeyRefusedError

    opened = head_link(args, "status")
    if isinstance(opened, int):
        return opened
    link, address = opened
    try:
        _op, reply = link.request("nodes", args.timeout)
    except (HeadUnreachableError, KeyRefusedError) as exc:
        print(f"nexus status: {exc}", file=sys.stderr)
        return 1
    finally:
        link.close()
    if args.json:
        print(json.dumps({"address": address, **reply}, indent=1))
        return 0
    print(f"head at {address}: {sum(n['alive'] for n in reply['nodes'])} node(s) alive, {reply['refused']} peer(s) refused")
    for n in reply["nodes"]:
        amounts = ", ".join(f"{v:g} {k}" for k, v in sorted(n["resources"].items()))
        where = n.get("state", "ALIVE").lower() if n["alive"] else f"dead ({n['why']})"
        print(f"  node {n['node_id']:06x} {n['host']:<20} {where:<10} {amounts}{'  (head)' if n['head'] else ''}")
    return 0


def clear_errors(command: Any) -> Any:
    """A command whose bad input (a loose key file, a bad address) ends in one line saying so, not a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(command(args))
        except (OSError, ValueError) as exc:
            print(f"nexus {args.command}: {exc}", file=sys.stderr)
            return 1

    return run


def add_commands(commands: Any) -> None:
    start = commands.add_parser("start", help="start a head (--head) or a node that joins one (--address, --key)")
    start.add_argument("--head", action="store_true", help="start a head on this host")
    start.add_argument("--port", type=int, default=6380, help="the head's port (default 6380; 0: any free one)")
    start.add_argument("--bind", default="127.0.0.1", help="the head's address to listen on (default: loopback only)")
    start.add_argument("--node-timeout", type=float, default=None, help="seconds of silence before a node is declared dead (default 5)")
    start.add_argument(
        "--membership",
        default=None,
        metavar="memory|etcd://HOST:PORT",
        help="where the head keeps the members: its memory (default) or an etcd 3.4+ server",
    )
    start.add_argument("--phi-threshold", type=float, default=None, help="phi from which a silent node is suspected (default 8)")
    start.add_argument("--address", default=None, metavar="HOST:PORT", help="the head to join")
    start.add_argument("--key", default=None, metavar="FILE", help="the node.key file of that head")
    start.add_argument("--block", action="store_true", help="run in the foreground (until Ctrl-C) instead of in the background")
    add_common(start)
    start.set_defaults(func=clear_errors(_start))
    stop = commands.add_parser("stop", help="stop the head and nodes `nexus start` started on this host")
    stop.set_defaults(func=clear_errors(_stop))
    status = commands.add_parser("status", help="the nodes of a cluster, as its head sees them")
    add_head_options(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=clear_errors(_status))
