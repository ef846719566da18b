"""The bridge over a real pty, with the device client (the MicroPython one, run by CPython) at the other end.

Faults go in between: a thread copies bytes between two ptys and flips bits,
drops and inserts bytes, and writes noise between frames, or closes the
bridge's side of the line (an unplugged cable) and makes a new one at the
same path.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import threading
import time
import tty
from collections.abc import Iterator
from concurrent.futures import wait
from pathlib import Path
from typing import Any

import pytest

from nexus.cluster.bridge.device import FdUart
from nexus.cluster.bridge.device.nexus_device import Client
from nexus.cluster.bridge.link import DeviceCallError, DeviceGoneError, SerialBridge
from tests.conftest import wait_until


class Thermostat:
    def __init__(self) -> None:
        self.log: list[int] = []
        self.hold = threading.Event()

    def add(self, a: Any, b: Any) -> Any:
        return a + b

    def boom(self) -> None:
        raise ValueError("the sensor is unplugged")

    def note(self, n: int) -> None:
        self.log.append(n)

    def seen(self) -> list[int]:
        return self.log

    def slow(self) -> str:
        self.hold.wait(10)
        return "late"


class Device:
    """The client on the master side of a pty, stepped by a thread, until it is stopped (or rebooted)."""

    def __init__(self, fd: int, key: bytes = b"thermo01", actor: Thermostat | None = None) -> None:
        self.actor = actor or Thermostat()
        self.client = Client(FdUart(fd), key)
        self.client.actor("thermo", self.actor, ("add", "boom", "note", "seen", "slow"))
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            self.client.step()

    def stop(self) -> None:
        self.running = False
        self.actor.hold.set()
        self.thread.join(5)

    def crash(self) -> None:
        """Stop as a board that loses power: nothing more comes from it, not even the answer it was making."""
        self.client.uart = _Dead()
        self.stop()


class _Dead:
    def read(self) -> None:
        time.sleep(0.005)

    def write(self, data: bytes) -> None:
        pass


@pytest.fixture
def line() -> Iterator[tuple[int, str]]:
    """A pty: its master for the device, its slave's path for the bridge."""
    master, slave = os.openpty()
    yield master, os.ttyname(slave)
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


def test_calls_reach_the_devices_actor_and_its_answers_and_errors_come_back(line: tuple[int, str]) -> None:
    master, path = line
    device = Device(master)
    calls: list[tuple[str, str, list[Any]]] = []

    def outcall(actor: str, method: str, args: list[Any]) -> Any:
        calls.append((actor, method, args))
        return {"ok": args[0] * 2}

    with SerialBridge(path, outcall=outcall) as bridge:
        assert bridge.wait_device(10, actors=1) == b"thermo01"
        assert bridge.actors == {"thermo": ("add", "boom", "note", "seen", "slow")}
        futures = [bridge.call("thermo", "add", [i, 0.5]) for i in range(20)]
        assert [f.result(10) for f in futures] == [i + 0.5 for i in range(20)]
        assert bridge.call("thermo", "add", ["dé", "vice"]).result(10) == "dévice"
        assert bridge.call("thermo", "add", [[1, None], [True, {"k": b"\x00"}]]).result(10) == [1, None, True, {"k": b"\x00"}]
        with pytest.raises(DeviceCallError, match=r"ValueError\(.the sensor is unplugged.\)"):
            bridge.call("thermo", "boom").result(10)
        with pytest.raises(AttributeError, match=r"no method 'reboot' \(it has add, boom"):
            bridge.call("thermo", "reboot")
        with pytest.raises(AttributeError, match=r"no actor 'lamp' \(it registered \['thermo'\]\)"):
            bridge.call("lamp", "on")
        with pytest.raises(ValueError, match="over the device's MTU"):
            bridge.call("thermo", "add", ["x" * 200, ""])
        with pytest.raises(TypeError, match="plain values only"):
            bridge.call("thermo", "add", [object(), 1])
        for n in range(5):
            bridge.tell("thermo", "note", [n])
        assert bridge.call("thermo", "seen").result(10) == [0, 1, 2, 3, 4]
        # the device calls the cluster, and publishes telemetry
        assert device.client.call("counter", "incr", 21) == {"ok": 42}
        assert calls == [("counter", "incr", [21])]
        device.client.publish("temperature", 21.5)
        wait_until(lambda: "temperature" in bridge.describe()["telemetry"])
        assert bridge.describe()["telemetry"]["temperature"] == 21.5
        assert bridge.describe()["statistics"]["malformed"] == 0
    device.stop()


def test_a_rebooted_device_fails_the_call_it_had_and_registers_again(line: tuple[int, str]) -> None:
    master, path = line
    device = Device(master)
    with SerialBridge(path) as bridge:
        bridge.wait_device(10, actors=1)
        pending = bridge.call("thermo", "slow")
        time.sleep(0.2)
        device.crash()  # (mid-call: its answer is never sent)
        rebooted = Device(master)  # the same key: the same device, rebooted
        with pytest.raises(DeviceGoneError, match="started its session again"):
            pending.result(10)
        wait_until(lambda: bridge.stats.sessions >= 2 and bridge.actors)
        assert bridge.call("thermo", "add", [1, 2]).result(10) == 3
        rebooted.crash()
        # New firmware: other actors. What it registers now is all it has.
        client = Client(FdUart(master), b"thermo01")
        client.actor("lamp", Thermostat(), ("add",))
        for _ in range(400):
            client.step()
            if bridge.stats.sessions >= 3 and bridge.actors:
                break
        assert bridge.actors == {"lamp": ("add",)}
        with pytest.raises(AttributeError, match="no actor 'thermo'"):
            bridge.call("thermo", "add", [1, 2])


def test_a_silent_device_is_let_go_and_its_calls_fail_not_hang(line: tuple[int, str]) -> None:
    master, path = line
    device = Device(master)
    with SerialBridge(path, heartbeat=0.2, timeout=1.0) as bridge:
        bridge.wait_device(10, actors=1)
        pending = bridge.call("thermo", "slow")
        time.sleep(0.1)
        device.crash()
        with pytest.raises(DeviceGoneError, match="silent"):
            pending.result(10)
        with pytest.raises(DeviceGoneError, match="no device is on"):
            bridge.call("thermo", "add", [1, 2])
    device.stop()


def test_a_call_the_device_never_answers_times_out(line: tuple[int, str]) -> None:
    master, path = line
    device = Device(master)
    with SerialBridge(path) as bridge:
        bridge.wait_device(10, actors=1)
        with pytest.raises(DeviceGoneError, match="did not answer in time"):
            bridge.call("thermo", "slow", timeout=0.5).result(10)
    device.stop()


class FaultyLine:
    """Two ptys joined by a thread that damages what it copies; ``unplug`` closes the bridge's side for a while."""

    def __init__(self, tmp: Path, seed: int, rate: float) -> None:
        self.device_master, device_slave = os.openpty()
        tty.setraw(device_slave)
        self.device_side = device_slave  # what the device writes comes out here
        self.path = tmp / "line"  # the bridge opens this name (a link to its pty, made again on replug)
        self.random = random.Random(seed)
        self.rate = rate
        self.damaged = 0
        self.lock = threading.Lock()
        self._plug()
        self.running = True
        self.thread = threading.Thread(target=self._copy, daemon=True)
        self.thread.start()

    def _plug(self) -> None:
        self.bridge_master, self.bridge_slave = os.openpty()
        tmp = self.path.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(self.bridge_slave))
        tmp.replace(self.path)

    def unplug(self, seconds: float) -> None:
        with self.lock:
            for fd in (self.bridge_master, self.bridge_slave):
                os.close(fd)
            self.bridge_master = -1
        time.sleep(seconds)
        with self.lock:
            self._plug()

    def _damage(self, data: bytes) -> bytes:
        out = bytearray()
        rng = self.random
        for byte in data:
            roll = rng.random()
            if roll < self.rate:  # a bit flipped
                out.append(byte ^ (1 << rng.randrange(8)))
            elif roll < 2 * self.rate:  # a byte lost
                pass
            elif roll < 3 * self.rate:  # a byte inserted
                out += bytes((byte, rng.randrange(256)))
            elif roll < 4 * self.rate:  # noise between frames
                out += bytes((byte, 0)) + rng.randbytes(rng.randrange(1, 12)) + b"\x00"
            else:
                out.append(byte)
                continue
            self.damaged += 1
        return bytes(out)

    def _copy(self) -> None:
        while self.running:
            with self.lock:
                bridge = self.bridge_master
            fds = [self.device_side] + ([bridge] if bridge >= 0 else [])
            ready, _, _ = select.select(fds, [], [], 0.02)
            for fd in ready:
                try:
                    data = os.read(fd, 512)
                except OSError:
                    continue
                target = bridge if fd == self.device_side else self.device_side
                if target < 0:
                    continue
                with contextlib.suppress(OSError):
                    os.write(target, self._damage(data))

    def close(self) -> None:
        self.running = False
        self.thread.join(5)
        for fd in (self.device_master, self.device_side, self.bridge_master, self.bridge_slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def test_on_a_damaged_line_each_message_arrives_once_and_in_order_and_the_bridge_counts_what_it_drops(tmp_path: Path) -> None:
    faulty = FaultyLine(tmp_path, seed=18, rate=0.001)
    device = Device(faulty.device_master)
    try:
        with SerialBridge(str(faulty.path), call_timeout=30) as bridge:
            bridge.wait_device(20, actors=1)
            for n in range(60):
                bridge.tell("thermo", "note", [n])
            futures = [bridge.call("thermo", "add", [n, 1]) for n in range(30)]
            wait(futures, timeout=60)
            answers = []
            for n, future in enumerate(futures):
                with contextlib.suppress(DeviceGoneError):  # (a session lost to the damage fails its calls: it says so)
                    answers.append((n, future.result(0)))
            assert all(value == n + 1 for n, value in answers)
            seen = device.actor.log
            assert seen == sorted(set(seen)), "a message came twice or out of order"
            statistics = bridge.describe()["statistics"]
            assert faulty.damaged > 20
            assert sum(statistics["rejected"].values()) > 0, statistics
            assert statistics["retransmitted"] > 0, statistics
            if statistics["sessions"] == 1:  # the session lived through it: nothing was lost at all
                assert seen == list(range(60))
                assert len(answers) == 30
    finally:
        device.stop()
        faulty.close()


def test_an_unplugged_line_fails_calls_then_the_bridge_opens_it_again(tmp_path: Path) -> None:
    faulty = FaultyLine(tmp_path, seed=1, rate=0.0)
    device = Device(faulty.device_master)
    try:
        with SerialBridge(str(faulty.path), reopen=0.1, heartbeat=0.2, timeout=3.0) as bridge:
            bridge.wait_device(10, actors=1)
            pending = bridge.call("thermo", "slow")
            unplug = threading.Thread(target=faulty.unplug, args=(1.0,))
            unplug.start()
            with pytest.raises(DeviceGoneError):
                pending.result(10)
            unplug.join()
            device.actor.hold.set()
            wait_until(lambda: bridge.stats.reopened >= 1)
            bridge.wait_device(10, actors=1)  # (under the bridge's lock: not the old session's actors, seen mid-change)
            assert bridge.call("thermo", "add", [2, 3]).result(10) == 5
    finally:
        device.stop()
        faulty.close()
