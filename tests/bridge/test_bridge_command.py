"""``nexus bridge PORT`` as a process beside a running head: another driver calls the device's actors through it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import nexus
from nexus.cluster.bridge.device import FdUart
from nexus.cluster.bridge.device.nexus_device import Client
from tests.remote.test_membership import Home


class Lamp:
    def __init__(self) -> None:
        self.lit = False

    def toggle(self) -> bool:
        self.lit = not self.lit
        return self.lit


def test_the_bridge_command_serves_a_devices_actors_to_the_cluster_until_it_is_stopped(tmp_path: Path) -> None:
    home = Home(tmp_path / "nexus-home")
    home.start_head()
    master, slave = os.openpty()
    client = Client(FdUart(master), b"lamp0001")
    client.actor("lamp", Lamp(), ("toggle",))
    running = True

    def serve() -> None:
        while running:
            client.step()

    device = threading.Thread(target=serve, daemon=True)
    device.start()
    bridge = subprocess.Popen(
        [sys.executable, "-m", "nexus.manage.cli", "bridge", os.ttyname(slave)],
        env=home.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    said: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any("actors: device:lamp0001/lamp" in line for line in said):
            assert time.monotonic() < deadline and bridge.poll() is None, f"the bridge did not report the device: {said}"
            said.append(bridge.stdout.readline())  # type: ignore[union-attr]
        saved = os.environ.get("NEXUS_HOME")
        os.environ["NEXUS_HOME"] = str(home.path)
        try:
            nexus.init(address="auto")
            lamp = nexus.get_actor("device:lamp0001/lamp")
            assert nexus.get([lamp.toggle.remote() for _ in range(3)], timeout=30) == [True, False, True]
            bridge.send_signal(signal.SIGINT)
            assert bridge.wait(30) == 0
            with pytest.raises(ValueError, match="no bridge holds the device 'lamp0001'"):
                nexus.get_actor("device:lamp0001/lamp")
        finally:
            nexus.shutdown()
            if saved is None:
                os.environ.pop("NEXUS_HOME", None)
            else:
                os.environ["NEXUS_HOME"] = saved
        assert "closed" in bridge.stdout.read()  # type: ignore[union-attr]
    finally:
        running = False
        if bridge.poll() is None:
            bridge.kill()
            bridge.wait(10)
        bridge.stdout.close()  # type: ignore[union-attr]
        device.join(5)
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        assert not home.stop_all()
