"""The MicroPython client on the real micro:bit firmware (MicroPython 1.9.2), emulated by QEMU, its UART a pty.

The client and an application are loaded through the raw REPL, then the
bridge calls the application's actor. Skipped where QEMU or the firmware is
missing, unless NEXUS_REQUIRE_QEMU=1 (CI sets it: there it must run).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nexus
from nexus.cluster.bridge.device import qemu_board, upload
from nexus.cluster.bridge.link import DeviceCallError, SerialBridge
from tests.conftest import wait_until

from .common import Counter

FIRMWARE = Path("/usr/share/firmware-microbit-micropython/firmware.hex")
APPLICATION = """\
import microbit
import micropython
class Sensor:
    want = 0
    got = None
    def add(self, a, b):
        return a + b
    def free(self):
        gc.collect()
        return gc.mem_free()
    def fail(self):
        raise OSError(5)
    def go(self):
        Sensor.want = 1
    def result(self):
        return Sensor.got
    def done(self, value):
        Sensor.want = 0
        Sensor.got = value
s = Sensor()
c = Client(microbit.uart, b"mbit0001", beat=1000)
c.actor("sensor", s, ("add", "free", "fail", "go", "result"))
"""
# The main loop, typed at the REPL: Ctrl-C off inside the statement (the REPL turns it on again after each), and
# the device's call to the cluster made from here, not from inside an actor's method (the board's 1.8 KB stack
# holds about six Python frames).
# An emulated board on a busy machine can stall for seconds: both ends wait longer than a real line needs
# before they give the other up (the bridge 10 s, the board six of its 1 s beats).
START = "while 1:micropython.kbd_intr(-1);c.step();_ = Sensor.want and s.done(c.call('counter', 'incr', 5))\n"

if not (shutil.which("qemu-system-arm") and FIRMWARE.exists()):
    if os.environ.get("NEXUS_REQUIRE_QEMU"):
        raise RuntimeError("NEXUS_REQUIRE_QEMU is set but qemu-system-arm or firmware-microbit-micropython is missing")
    pytest.skip("needs qemu-system-arm and firmware-microbit-micropython (Debian)", allow_module_level=True)


@contextlib.contextmanager
def _said_on_failure(bridge: Any) -> Iterator[None]:
    """On a failure, what the board said that was not frames (a traceback shows why it stopped) and the counts."""
    try:
        yield
    except BaseException as exc:
        facts = bridge.describe()
        raise AssertionError(f"{exc!r}; the board said: {facts['noise']!r}; {facts['statistics']}") from exc


@pytest.fixture
def microbit() -> Iterator[str]:
    """A booted micro:bit in QEMU: the path of its UART's pty."""
    with qemu_board("microbit", "-device", f"loader,file={FIRMWARE}") as path:
        yield path


def test_the_micropython_client_on_an_emulated_microbit_serves_its_actor_through_the_bridge(microbit: str) -> None:
    loaded = upload(microbit, APPLICATION, START, timeout=60)
    assert 0 < loaded.client_bytes < 7000, loaded  # (the client fits the board's ~9 KB heap, with room for the application)
    with SerialBridge(microbit, call_timeout=20, timeout=10) as bridge, _said_on_failure(bridge):
        assert bridge.wait_device(30, actors=1) == b"mbit0001"
        assert bridge.actors == {"sensor": ("add", "free", "fail", "go", "result")}
        assert [bridge.call("sensor", "add", [n, 0.5]).result(20) for n in range(5)] == [n + 0.5 for n in range(5)]
        assert bridge.call("sensor", "add", ["micro", ":bit"]).result(20) == "micro:bit"
        assert bridge.call("sensor", "add", [[1, True], [None]]).result(20) == [1, True, None]  # (shallow: the board has a 1.8 KB stack)
        assert bridge.call("sensor", "free").result(20) > 1000  # (running, it still has room)
        with pytest.raises(DeviceCallError, match="OSError"):
            bridge.call("sensor", "fail").result(20)
        assert bridge.describe()["statistics"]["malformed"] == 0


def test_the_microbits_actor_is_called_from_the_cluster(microbit: str) -> None:
    upload(microbit, APPLICATION, START, timeout=60)
    nexus.init(num_cpus=1)
    try:
        bridge = nexus.attach_bridge(microbit, wait=30, timeout=10)
        bridge.wait_device(30, actors=1)
        sensor = nexus.get_actor("device:mbit0001/sensor")
        with _said_on_failure(bridge):
            assert nexus.get([sensor.add.remote(n, n) for n in range(10)], timeout=60) == [2 * n for n in range(10)]
            counter = Counter.options(name="counter").remote()
            nexus.get(counter.incr.remote(10), timeout=30)
            sensor.go.tell()  # the board's main loop then calls the cluster's counter
            wait_until(lambda: nexus.get(sensor.result.remote(), timeout=30) == 15)
            (device,) = nexus.state.list_devices()
            assert device.actors == {"sensor": ["add", "free", "fail", "go", "result"]} and device.statistics["rejected"] == {}
    finally:
        nexus.shutdown()
