"""``nexus start``, ``nexus stop``, ``nexus status``: a head and node agents that outlive notebooks.

``start`` runs the daemon (:mod:`nexus.cluster.remote.daemon`) in a session
of its own, waits until it wrote its state file (ready) or exited (its log
says why), and prints what to do next. ``stop`` stops what ``start`` started
on this host, for this user: nodes first (they say they leave), then the head.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from ..cluster.remote.daemon import head_folder, node_folder, process_start
from ..cluster.remote.files import home, private_folder
from ..cluster.state.resources import amounts_text

__all__ = ["add_commands", "clear_errors_named", "head_link", "head_options"]

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
            [sys.executable, "-m", "nexus.manage.daemon", *argv],
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
    if args.config_file is not None:
        argv += ["--config", str(args.config_file)]
    if args.management_port is None:
        argv += ["--no-management"]
    else:
        argv += ["--management-bind", args.management_bind, "--management-port", str(args.management_port)]
    if args.block:
        from .daemon import main

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
    if state.get("management"):
        print(f"The management port (REST) is at http://{state['management']}/api/v1/: `nexus status`, `nexus list actors`.")
    return 0


def _start_node(args: argparse.Namespace, common: list[str]) -> int:
    folder = Path(private_folder(node_folder()))
    argv = ["node", "--address", args.address, "--key", os.path.abspath(args.key), *common]
    if args.block:
        from .daemon import main

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
    cluster = _cluster_status(args)
    if args.json:
        print(json.dumps({"address": address, **reply, **({"cluster": cluster} if cluster else {})}, indent=1))
        return 0
    print(f"head at {address}: {sum(n['alive'] for n in reply['nodes'])} node(s) alive, {reply['refused']} peer(s) refused")
    for n in reply["nodes"]:
        amounts = amounts_text(n["resources"])
        where = n.get("state", "ALIVE").lower() if n["alive"] else f"dead ({n['why']})"
        print(f"  node {n['node_id']:06x} {n['host']:<20} {where:<10} {amounts}{'  (head)' if n['head'] else ''}")
    if cluster:
        print(_cluster_lines(cluster))
    return 0


def _cluster_status(args: argparse.Namespace) -> dict[str, Any] | None:
    """What the head's management port says of the cluster (as ``ray status`` does), when a local head has one
    (None otherwise: the nodes are what the node key shows)."""
    from .client import ManagementError, request

    if args.address is not None:
        return None
    try:
        return dict(request("status", timeout=args.timeout))
    except ManagementError:
        return None


def _cluster_lines(cluster: dict[str, Any]) -> str:
    total, used = cluster["resources"]["total"], cluster["resources"]["used"]
    lines = ["resources (used / total):"]
    lines += [f"  {amounts_text({k: v}, used)}" for k, v in sorted(total.items()) if k != "object_store_memory"]
    summary = cluster["summary"]
    for what in ("actors", "tasks"):
        counts = ", ".join(f"{n} {state}" for state, n in sorted(summary.get(what, {}).items())) or "none"
        lines.append(f"{what}: {counts}")
    store = summary.get("object_store", {})
    used_mib, capacity_mib = store.get("used", 0) / 2**20, store.get("capacity", 0) / 2**20
    lines.append(f"object store: {used_mib:.1f} MiB of {capacity_mib:.0f} MiB, {store.get('objects', 0)} objects")
    devices = cluster.get("devices") or []
    lines.append(f"devices: {', '.join(str(d.get('key')) for d in devices) if devices else 'none'}")
    return "\n".join(lines)


def clear_errors(command: Any, name: str) -> Any:
    """``command`` run on its arguments, its bad input (a loose key file, a bad address) ending in one line that says
    so, not a traceback; what it returns is the exit code."""

    @functools.wraps(command)
    def run(**options: Any) -> None:
        try:
            code = int(command(argparse.Namespace(command=name, **options)))
        except (OSError, ValueError) as exc:
            print(f"nexus {name}: {exc}", file=sys.stderr)
            code = 1
        sys.exit(code)

    return run


def head_options(command: Any) -> Any:
    """``--address``, ``--key`` and ``--timeout``: the head a command asks (default: the one started here)."""
    command = click.option("--timeout", type=float, default=5.0, show_default=True, help="Seconds to wait for the head's answer.")(command)
    command = click.option("--key", default=None, metavar="FILE", help="A node.key file of that head.")(command)
    return click.option("--address", default=None, metavar="HOST:PORT", help="The head (default: the one started here).")(command)


class _Checked(click.ParamType):
    """A value checked by one of the daemon's converters (which raise ArgumentTypeError saying what is wanted)."""

    def __init__(self, convert: Any, name: str) -> None:
        self.check, self.name = convert, name

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        try:
            return self.check(value) if isinstance(value, str) else value
        except argparse.ArgumentTypeError as exc:
            self.fail(str(exc), param, ctx)


def _from_settings(args: argparse.Namespace) -> argparse.Namespace:
    """The options not given, from the config file (``--config``, ``$NEXUS_CONFIG`` or ./nexus.toml): ``[head]``
    for a head, ``[node]`` for a node."""
    from ..cluster.settings import load_settings

    settings = load_settings(args.config)
    args.config_file = os.path.abspath(settings.source) if settings.source else None
    if args.no_management and args.management_port is not None:
        raise ValueError("--no-management and --management-port contradict each other: say one")
    head, node = settings.head, settings.node
    if args.head:
        for name in ("bind", "port", "node_timeout", "membership", "phi_threshold", "num_cpus", "management_bind"):
            if getattr(args, name) is None:
                setattr(args, name, getattr(head, name))
        if args.management_port is None and not args.no_management and head.management:
            args.management_port = head.management_port
    elif not args.head:
        args.address = args.address or node.address or None
        args.key = args.key or node.key or None
        args.num_cpus = node.num_cpus if args.num_cpus is None else args.num_cpus
    return args


def add_commands(cli: click.Group) -> None:
    from ..cluster.remote.daemon import _bytes, _cpus

    @cli.command("start", short_help="Start a head (--head) or a node that joins one (--address, --key).")
    @click.option("--head", is_flag=True, help="Start a head on this host.")
    @click.option("--port", type=int, default=None, help="The head's port (default 6380; 0: any free one).")
    @click.option("--bind", default=None, help="The head's address to listen on (default: loopback only).")
    @click.option("--node-timeout", type=float, default=None, help="Seconds of silence before a node is declared dead (default 5).")
    @click.option("--membership", default=None, metavar="memory|etcd://HOST:PORT", help="Where the members are kept (default: memory).")
    @click.option("--phi-threshold", type=float, default=None, help="phi from which a silent node is suspected (default 8).")
    @click.option("--address", default=None, metavar="HOST:PORT", help="The head to join.")
    @click.option("--key", default=None, metavar="FILE", help="The node.key file of that head.")
    @click.option("--block", is_flag=True, help="Run in the foreground (until Ctrl-C) instead of in the background.")
    @click.option("--num-cpus", type=_Checked(_cpus, "cpus"), default=None, help="The CPUs this node offers (default: all; 0: none).")
    @click.option("--object-store-memory", type=_Checked(_bytes, "bytes"), metavar="BYTES", help="This node's object store (default: 30%).")
    @click.option("--resources", default=None, help="Other resources as JSON, such as '{\"GPU\": 1}'.")
    @click.option("--labels", multiple=True, metavar="NAME=VALUE[,...]", help="Labels for placement (repeat, or separate with commas).")
    @click.option("--management-port", type=int, default=None, help="The head's REST management port (default: any free one).")
    @click.option("--management-bind", default=None, help="Its address to listen on (default: loopback only).")
    @click.option("--no-management", is_flag=True, help="No management port.")
    @click.option("--config", default=None, metavar="FILE", help="A nexus.toml whose [head] or [node] gives what is not said here.")
    @clear_errors_named("start")
    def start(args: argparse.Namespace) -> int:
        """Start a head on this host (--head), or a node that joins a head (--address HOST:PORT --key FILE).

        It runs in the background and outlives this command; `nexus stop` stops it.
        """
        args.labels = [part for given in args.labels for part in given.split(",") if part]
        return _start(_from_settings(args))

    @cli.command("stop", short_help="Stop the head and nodes `nexus start` started on this host.")
    @clear_errors_named("stop")
    def stop(args: argparse.Namespace) -> int:
        """Stop the head and nodes `nexus start` started on this host, for this user: nodes first, then the head."""
        return _stop(args)

    @cli.command("status", short_help="The nodes of a cluster, as its head sees them.")
    @head_options
    @click.option("--json", "json_", is_flag=True, help="Print JSON.")
    @clear_errors_named("status")
    def status(args: argparse.Namespace) -> int:
        """The nodes of a cluster as its head sees them: their hosts, states and resources."""
        args.json = args.json_
        return _status(args)


def clear_errors_named(name: str) -> Any:
    """(A decorator) :func:`clear_errors` for the command ``name``."""
    return lambda command: clear_errors(command, name)
