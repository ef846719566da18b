"""Simulated hosts: Linux network namespaces joined by veth pairs to a bridge, each with its own /dev/shm and name.

``Hosts(3)`` makes namespaces ``<tag>-h1..h3`` and a switch namespace holding a bridge; host ``i`` has the address
``10.213.0.i/24`` on its veth, and no other address exists anywhere (the root namespace gets none). A process runs
on a host through ``ip netns exec`` (which gives it a mount namespace of its own) and ``unshare -u``: it mounts a
private tmpfs on /dev/shm and takes the host's name, so that objects must cross the network and ``nexus status``
shows hosts by name. Every host has its own ``$NEXUS_HOME``. Needs root and iproute2; ``close()`` kills every
process of the namespaces and removes them.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["Hosts", "hosts_available"]

_ON_HOST = 'hostname "$0" && mount -t tmpfs -o size=3g,mode=1777 nexus-shm /dev/shm && exec "$@"'


def hosts_available() -> str | None:
    """Why simulated hosts cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install iproute2 util-linux)"
    return None


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")


class Hosts:
    def __init__(self, count: int, base: Path) -> None:
        self.tag = f"nx{secrets.token_hex(3)}"  # interface names are at most 15 characters
        self.count = count
        self.switch = f"{self.tag}-sw"
        self.names = [f"{self.tag}-h{i}" for i in range(1, count + 1)]
        self.homes = [base / f"host{i}" for i in range(1, count + 1)]
        self.made: list[str] = []
        try:
            _ip("netns", "add", self.switch)
            self.made.append(self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            for i, ns in enumerate(self.names, 1):
                _ip("netns", "add", ns)
                self.made.append(ns)
                _ip("link", "add", self.dev(i), "netns", ns, "type", "veth", "peer", "name", f"p{i}", "netns", self.switch)
                _ip("-n", self.switch, "link", "set", f"p{i}", "master", "br0")
                _ip("-n", self.switch, "link", "set", f"p{i}", "up")
                _ip("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", self.dev(i))
                _ip("-n", ns, "link", "set", self.dev(i), "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        for home in self.homes:
            home.mkdir(parents=True, mode=0o700)

    def dev(self, i: int) -> str:
        return f"{self.tag}e{i}"

    def address(self, i: int) -> str:
        return f"10.213.0.{i}"

    def env(self, i: int) -> dict[str, str]:
        return dict(os.environ, NEXUS_HOME=str(self.homes[i - 1]))

    def argv(self, i: int, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.names[i - 1], "unshare", "-u", "sh", "-c", _ON_HOST, f"host{i}", *argv]

    def run(self, i: int, argv: list[str], timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.argv(i, argv), env=self.env(i), capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"on host{i}: {' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def popen(self, i: int, argv: list[str], stderr: Any = subprocess.PIPE) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(i, argv), env=self.env(i), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True
        )

    def nexus(self, i: int, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run(i, [sys.executable, "-m", "nexus.manage.cli", *args], timeout=timeout, check=check)

    def python(self, i: int, code: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return self.run(i, [sys.executable, "-c", code, *args], timeout=timeout)

    def link(self, i: int, up: bool) -> None:
        """Cut host ``i``'s link (``ip link set DEV down``) or restore it."""
        _ip("-n", self.names[i - 1], "link", "set", self.dev(i), "up" if up else "down")

    def partition(self, i: int, on: bool) -> None:
        """Cut host ``i`` off from the others while its link stays up (a blackhole route to the whole subnet's
        other hosts: what it sends them is dropped), or heal that. (netem's loss would do as well, where the
        kernel has it: this one's does not.)"""
        for j in range(1, self.count + 1):
            if j != i:
                _ip("-n", self.names[i - 1], "route", "add" if on else "del", "blackhole", f"{self.address(j)}/32")

    def traffic(self, i: int) -> int:
        """The bytes host ``i``'s veth has received and sent so far."""
        out = subprocess.run(
            ["ip", "-n", self.names[i - 1], "-s", "-j", "link", "show", "dev", self.dev(i)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        stats = json.loads(out)[0]["stats64"]
        return int(stats["rx"]["bytes"]) + int(stats["tx"]["bytes"])

    def pids(self, i: int) -> list[int]:
        return _pids(self.names[i - 1])

    def close(self) -> None:
        for _ in range(3):
            alive = [pid for ns in self.made for pid in _pids(ns)]
            if not alive:
                break
            for pid in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        for ns in reversed(self.made):
            with contextlib.suppress(RuntimeError):
                _ip("netns", "del", ns)
        self.made.clear()


def _pids(ns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]
