"""A real etcd server for tests (Debian's etcd-server), on loopback ports of its own (the ``etcd`` fixture of
tests/conftest.py makes one).

Importing this module skips the test module that does where etcd is missing, unless NEXUS_REQUIRE_ETCD=1 (CI
sets it: there it must run).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import wait_until

if not shutil.which("etcd"):
    if os.environ.get("NEXUS_REQUIRE_ETCD"):
        raise RuntimeError("NEXUS_REQUIRE_ETCD is set but etcd (Debian's etcd-server) is missing")
    pytest.skip("needs etcd (Debian's etcd-server)", allow_module_level=True)

from nexus.cluster.services.etcd import EtcdMembership  # noqa: E402  (etcd3gw: installed with the etcd extra)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Etcd:
    """One etcd member on loopback, with a data folder of its own; stopped and started again as a test says."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.client, self.peer = folder, _free_port(), _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        client, peer = f"http://127.0.0.1:{self.client}", f"http://127.0.0.1:{self.peer}"
        argv = [
            "etcd",
            "--name",
            "t",
            "--data-dir",
            str(self.folder),
            "--listen-client-urls",
            client,
            "--advertise-client-urls",
            client,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            f"t={peer}",
        ]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = EtcdMembership(port=self.client, timeout=1.0)
        try:
            wait_until(lambda: _answers(probe), timeout=30, interval=0.05)
        finally:
            probe.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


def _answers(backend: EtcdMembership) -> bool:
    try:
        backend.members()
        return True
    except ConnectionError:
        return False
