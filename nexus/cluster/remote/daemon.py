"""The processes ``nexus start`` leaves running: a head, or a node agent (``python -m nexus.cluster.remote.daemon``).

Each writes a state file in its folder under ``$NEXUS_HOME`` (``~/.nexus``;
mode 0700, files 0600) once it is ready, which ``nexus start`` waits for and
``nexus stop`` and ``nexus status`` read, and removes it when it ends
(SIGTERM or SIGINT: a node says it leaves first).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..config import ClusterConfig
from ..node.sampler import ProcessMeter
from ..store import default_memory
from .files import home, private_folder, write_private

__all__ = ["head_folder", "main", "node_folder"]


def head_folder(base: Path | None = None) -> Path:
    return (base or home()) / "head"


def node_folder(base: Path | None = None) -> Path:
    return (base or home()) / "nodes"


def process_start(pid: int) -> int:
    """When process ``pid`` started (clock ticks since boot): with its pid, it names one process for good."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def _log(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)


# What serves beside a head (the management layer's ports, given by ``nexus.manage.daemon``): called with the
# runtime, the head service and the head's folder once they are up; returns what the state file says of it, and
# what stops it.
Serving = Callable[[Any, Any, Path, argparse.Namespace], tuple[dict[str, Any], Callable[[], None]]]


def run_head(args: argparse.Namespace, serving: Serving | None = None) -> int:
    from .head import HeadService
    from .keys import create_head_keys

    private_folder(home())
    folder = Path(private_folder(head_folder()))
    state_file = folder / "state.json"
    keys = create_head_keys(str(folder), cluster=f"{socket.gethostname()}-{os.urandom(4).hex()}")
    from ..head.runtime import Runtime

    overrides = {k: v for k, v in (("membership", args.membership), ("phi_threshold", args.phi_threshold)) if v is not None}
    base = None
    if args.config:  # (a nexus.toml: its [tuning], and what its [head] says of membership and failure detection)
        from ..settings import load_settings

        base = load_settings(args.config).system_config()
    config = ClusterConfig.from_environment(overrides, os.environ, base=base)
    num_cpus = args.num_cpus if args.num_cpus is not None else os.cpu_count() or 1
    custom = _resources(args.resources)
    custom.setdefault("memory", default_memory(args.object_store_memory))
    runtime = Runtime(  # the head's own node
        num_cpus, "shm", "default", resources=custom or None, object_store_memory=args.object_store_memory, config=config
    )
    try:
        service = HeadService(
            keys,
            bind=args.bind,
            port=args.port,
            heartbeat=args.heartbeat or config.node_heartbeat,
            timeout=args.node_timeout or config.node_timeout,
            resources={"CPU": float(num_cpus), **custom},
            labels=_labels(args.labels),
            log=_log,
            runtime=runtime,
            membership=config.membership,
            phi_threshold=config.phi_threshold,
        )
    except BaseException:
        runtime.shutdown()
        raise
    stop = _stop_on_signals()
    shown = socket.gethostname() if args.bind in ("0.0.0.0", "::", "*") else args.bind
    address = f"{shown}:{service.port}"
    told: dict[str, Any] = {}
    closing: Callable[[], None] = lambda: None  # noqa: E731
    try:
        if serving is not None:
            told, closing = serving(runtime, service, folder, args)
    except BaseException:
        service.close()
        runtime.shutdown()
        raise
    state = {"address": address, "pid": os.getpid(), "started": process_start(os.getpid()), "cluster": keys.cluster}
    write_private(str(state_file), {**state, "node_key": keys.node_key_file, **told})
    _log(f"nexus head: listening on {args.bind}:{service.port} (cluster {keys.cluster})")
    try:
        service.serve(stop)
    finally:
        closing()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(state_file)
        service.close()
        runtime.shutdown()
        _log("nexus head: stopped")
    return 0


def run_node(args: argparse.Namespace) -> int:
    from .agent import HeadUnreachableError, KeyRefusedError, NodeLink
    from .keys import load_node_key
    from .output import OutputRelay, batches

    private_folder(home())
    folder = Path(private_folder(node_folder()))
    key = load_node_key(args.key)
    resources = {"CPU": float(args.num_cpus if args.num_cpus is not None else os.cpu_count() or 1), **_resources(args.resources)}
    resources.setdefault("memory", default_memory(args.object_store_memory))
    labels = _labels(args.labels)
    link = NodeLink(key, args.address)
    stop = _stop_on_signals()
    state_file = folder / f"node-{os.getpid()}.json"
    workers: list[subprocess.Popen[bytes]] = []  # task workers: kept at one per CPU
    actors: list[subprocess.Popen[bytes]] = []  # actor workers: one spare, and those the head asked for
    relay = OutputRelay()  # what they print, for the head (and this agent's log)
    arena, server = _node_store(args, key, link)
    spec = (args.address, key.path, arena.fd)  # what each worker is started with
    try:
        try:
            node_id = link.join(resources, labels, timeout=args.join_timeout, store={"size": arena.size, "address": server.address})
        except (KeyRefusedError, HeadUnreachableError) as exc:
            _log(f"nexus node: {exc}")
            return 3

        def record(node_id: int) -> None:
            """Joined (again) as ``node_id``: the state file says so, and the workers attach under that number."""
            _stop_workers(workers)
            _stop_workers(actors)
            server.node_id, server.allowed = node_id, set(link.allowed)  # (its old number's objects are gone)
            workers[:] = _start_workers(int(resources["CPU"]), spec, node_id, "task", relay)
            actors[:] = _start_workers(1, spec, node_id, "actor", relay)  # a spare, for an actor placed here
            write_private(
                str(state_file), {"address": args.address, "pid": os.getpid(), "started": process_start(os.getpid()), "node_id": node_id}
            )

        def spawn(kind: str) -> None:  # the head asks for one more (an actor took this node's spare)
            if kind == "actor":
                actors.extend(_start_workers(1, spec, link.node_id, "actor", relay))

        def tick() -> None:  # (each beat, on the thread that beats: the only one that uses the link)
            for pid, err, text in batches(relay.take()):  # (before exits: a crashed worker's last words go under its name)
                link.send_output(pid, err, text)
            _replace_exited(workers, actors, spec, link.node_id, link.report_exit, relay)

        def leave(why: str) -> None:  # the head asks this node to leave: as a SIGTERM would
            _log(f"nexus node {link.node_id}: the head asks it to leave ({why})")
            stop.set()

        def stacks() -> None:  # the head asks for every worker's Python stacks (nexus dump)
            from ..worker.main import STACKS_SIGNAL

            for proc in [*workers, *actors]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, STACKS_SIGNAL)

        meter = ProcessMeter()

        def samples() -> list[list[float]]:  # (each second, with a beat: the head records them as its workers')
            pids = [proc.pid for proc in [*workers, *actors] if proc.returncode is None]
            meter.forget_others(set(pids))
            return [[pid, *measured] for pid in pids if (measured := meter.measure(pid)) is not None]

        link.on_spawn, link.on_stop, link.on_stacks = spawn, leave, stacks
        record(node_id)
        _log(f"nexus node {node_id}: joined the head at {args.address} with {resources}; {len(workers)} workers")
        link.beat_until(
            stop,
            resources,
            labels,
            _log,
            rejoined=record,
            tick=tick,
            samples=samples,
        )
        link.leave()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(state_file)
        _stop_workers(workers)
        _stop_workers(actors)
        relay.close()
        server.close()
        arena.close(unlink=True)
        link.close()
    _log(f"nexus node {link.node_id}: stopped")
    return 0


def _node_store(args: argparse.Namespace, key: Any, link: Any) -> tuple[Any, Any]:
    """This node's arena (its workers write values there) and the server of its regions to other hosts, bound to
    the address this host reaches the head from."""
    from ..store import Arena, default_capacity
    from .agent import parse_address
    from .objects import ObjectServer, address_towards

    config = ClusterConfig.from_environment(None, os.environ)
    arena = Arena.create(default_capacity(args.object_store_memory), config.arena_chunk, config.prefault_step)
    arena.unlink()  # its workers inherit its descriptor: nothing is left in /dev/shm, however the agent ends
    try:
        server = ObjectServer(arena.view, key.pair, address_towards(*parse_address(args.address)))
    except BaseException:
        arena.close(unlink=True)
        link.close()
        raise
    # Not prefaulted here (zeros written by a thread of this agent would race its workers' writes): each region is
    # reserved by the worker it is handed to (store_client.reserve), which allocates its pages in one call
    return arena, server


def _start_workers(count: int, spec: tuple[str, str, int], node_id: int, kind: str, relay: Any) -> list[subprocess.Popen[bytes]]:
    """This node's workers: each attaches to the head on its own (and dies with this agent); ``relay`` reads what
    they print. ``spec``: the head's address, the key file, this node's arena (a descriptor they inherit)."""
    address, key_path, arena = spec
    argv = [sys.executable, "-m", "nexus.cluster.remote.worker", "--address", address, "--key", key_path, "--kind", kind]
    argv += ["--arena-fd", str(arena)]
    # Not a worker of any local cluster this agent may have been started from (that cluster's files are not theirs)
    env = {k: v for k, v in os.environ.items() if k not in ("NEXUS_CLUSTER_ID", "NEXUS_ARENA", "NEXUS_NODE_ID")}
    env["PYTHONUNBUFFERED"] = "1"  # (what a task prints goes to the head as it is printed, and is not lost with it)
    procs = [
        subprocess.Popen(
            [*argv, "--node", str(node_id), "--agent", str(os.getpid())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            pass_fds=(arena,),
            env=env,
        )
        for _ in range(count)
    ]
    for proc in procs:
        relay.watch(proc)
    return procs


def _replace_exited(
    workers: list[subprocess.Popen[bytes]],
    actors: list[subprocess.Popen[bytes]],
    spec: tuple[str, str, int],
    node_id: int,
    report: Any,
    relay: Any,
) -> None:
    """Workers that exited are told to the head with their exit codes (it settles what they ran at once, rather than
    when their links go silent); task workers (a task that crashed its process, a force-cancel) are started again."""
    exited = [proc for proc in workers if proc.poll() is not None]
    for proc in exited:
        workers.remove(proc)
        report(proc.pid, proc.returncode)
    for proc in [p for p in actors if p.poll() is not None]:
        actors.remove(proc)
        report(proc.pid, proc.returncode)
    if exited:
        workers.extend(_start_workers(len(exited), spec, node_id, "task", relay))


def _stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for proc in workers:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
    deadline = time.monotonic() + 5
    for proc in workers:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    workers.clear()


def _resources(text: str | None) -> dict[str, float]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise SystemExit(f"--resources is JSON, such as '{{\"GPU\": 1}}', not {text!r}") from None
    amounts = isinstance(value, dict) and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in value.values())
    if not amounts or "CPU" in value:
        raise SystemExit("--resources maps names (not CPU: that is --num-cpus) to non-negative amounts")
    return {str(k): float(v) for k, v in value.items()}


def _labels(pairs: Sequence[str] | None) -> dict[str, str]:
    labels = {}
    for pair in pairs or ():
        name, eq, value = pair.partition("=")
        if not eq or not name:
            raise SystemExit(f"--labels takes NAME=VALUE, not {pair!r}")
        labels[name] = value
    return labels


def _whole(text: str, least: int, what: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = least - 1
    if n < least:
        raise argparse.ArgumentTypeError(f"{what}, not {text!r}")
    return n


def _bytes(text: str) -> int:
    return _whole(text, 1 << 20, "an object store size is a number of bytes, at least 1 MiB (1048576)")


def _cpus(text: str) -> int:
    return _whole(text, 0, "a number of CPUs is a whole number, 0 or more")


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-cpus", type=_cpus, default=None, help="the CPUs this node offers (default: all; 0: none)")
    parser.add_argument(
        "--object-store-memory", type=_bytes, default=None, metavar="BYTES", help="this node's object store (default: 30%% of RAM)"
    )
    parser.add_argument("--resources", default=None, help="other resources as JSON, such as '{\"GPU\": 1}'")
    parser.add_argument("--labels", nargs="*", default=None, metavar="NAME=VALUE", help="labels for placement")


def build_parser(head_options: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nexus.cluster.remote.daemon")
    kinds = parser.add_subparsers(dest="kind", required=True)
    head = kinds.add_parser("head")
    if head_options is not None:
        head_options(head)
    head.add_argument("--bind", default="127.0.0.1")
    head.add_argument("--port", type=int, default=6380)
    head.add_argument("--node-timeout", type=float, default=None)
    head.add_argument("--heartbeat", type=float, default=None)
    head.add_argument("--membership", default=None, metavar="memory|etcd://HOST:PORT")
    head.add_argument("--phi-threshold", type=float, default=None)
    head.add_argument("--config", default=None, metavar="FILE")
    add_common(head)
    node = kinds.add_parser("node")
    node.add_argument("--address", required=True)
    node.add_argument("--key", required=True)
    node.add_argument("--join-timeout", type=float, default=10.0)
    add_common(node)
    return parser


def main(argv: Sequence[str] | None = None, serving: Serving | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    args = (parser or build_parser()).parse_args(argv)
    try:
        return run_head(args, serving) if args.kind == "head" else run_node(args)
    except (OSError, ValueError) as exc:
        _log(f"nexus {args.kind}: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
