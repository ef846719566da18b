"""Device actors in a real local cluster: the bridge is an actor on a worker, the device (the MicroPython client,
run by CPython) on the other end of a pty; called from the driver and from tasks, listed by the state API."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import nexus
from nexus.cluster.bridge.device import FdUart
from nexus.cluster.bridge.device.nexus_device import Client
from nexus.cluster.bridge.link import DeviceCallError, DeviceGoneError
from tests.conftest import wait_until

from .common import Counter


class Thermostat:
    def __init__(self) -> None:
        self.notes: list[Any] = []

    def read(self) -> float:
        return 21.5

    def add(self, a: Any, b: Any) -> Any:
        return a + b

    def note(self, value: Any) -> None:
        self.notes.append(value)

    def fail(self) -> None:
        raise OSError("sensor lost")


class Device:
    def __init__(self, fd: int, key: bytes = b"thermo01", mtu: int = 96) -> None:
        self.actor = Thermostat()
        self.client = Client(FdUart(fd), key, mtu=mtu)
        self.client.actor("thermo", self.actor, ("read", "add", "note", "fail"))
        self.running = True
        self.outbox: list[tuple[str, str, tuple[Any, ...]]] = []  # calls out, made by the device's own loop
        self.answers: list[Any] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            self.client.step()
            while self.outbox:
                actor, method, args = self.outbox.pop(0)
                try:
                    self.answers.append(self.client.call(actor, method, *args))
                except Exception as exc:
                    self.answers.append(exc)

    def stop(self) -> None:
        self.running = False
        self.thread.join(5)


@pytest.fixture(scope="module")
def device_cluster() -> Iterator[tuple[Device, Any]]:
    master, slave = os.openpty()
    device = Device(master)
    nexus.init(num_cpus=1)
    try:
        bridge = nexus.attach_bridge(os.ttyname(slave), wait=20)
        bridge.wait_device(20, actors=1)
        yield device, bridge
    finally:
        nexus.shutdown()
        device.stop()
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@nexus.remote
def add_on_device(handle: Any, a: int, b: int) -> Any:
    return nexus.get(handle.add.remote(a, b))


def test_a_device_actor_is_called_like_any_actor_from_the_driver_and_from_tasks(device_cluster: tuple[Device, Any]) -> None:
    device, bridge = device_cluster
    thermo = nexus.get_actor("device:thermo01/thermo")
    assert repr(thermo) == "DeviceActor(device:thermo01/thermo)"
    assert nexus.get(thermo.read.remote(), timeout=30) == 21.5
    assert nexus.get([thermo.add.remote(n, 1) for n in range(20)], timeout=30) == list(range(1, 21))
    assert nexus.get(add_on_device.remote(thermo, 40, 2), timeout=30) == 42  # (the handle travels to a task)
    thermo.note.tell("hello")
    wait_until(lambda: device.actor.notes == ["hello"])
    assert nexus.get_actor(f"device:{b'thermo01'.hex()}/thermo") == thermo  # (the key in hex finds it too)
    assert bridge.get_actor("thermo") == thermo
    with pytest.raises(DeviceCallError, match="sensor lost"):
        nexus.get(thermo.fail.remote(), timeout=30)


def test_wrong_names_and_arguments_say_what_is_there(device_cluster: tuple[Device, Any]) -> None:
    thermo = nexus.get_actor("device:thermo01/thermo")
    with pytest.raises(AttributeError, match=r"has no method 'reboot' \(it has read, add, note, fail\)"):
        thermo.reboot.remote()
    with pytest.raises(TypeError, match="positional arguments only"):
        thermo.add.remote(a=1, b=2)
    with pytest.raises(ValueError, match=r"has no actor 'lamp' \(it registered \['thermo'\]\)"):
        nexus.get_actor("device:thermo01/lamp")
    with pytest.raises(ValueError, match=r"no bridge holds the device 'other' now \(devices: device:thermo01 on"):
        nexus.get_actor("device:other/thermo")
    with pytest.raises(ValueError, match="'device:<key>/<actor>'"):
        nexus.get_actor("device:thermo01")
    with pytest.raises(TypeError, match="plain values only"):
        nexus.get(thermo.add.remote(object(), 1), timeout=30)


def test_the_device_calls_a_named_actor_of_the_cluster(device_cluster: tuple[Device, Any]) -> None:
    device, _bridge = device_cluster
    counter = Counter.options(name="counter").remote()
    nexus.get(counter.incr.remote(1), timeout=30)
    device.outbox.append(("counter", "incr", (41,)))
    device.outbox.append(("nobody", "incr", (1,)))
    wait_until(lambda: len(device.answers) == 2)
    assert device.answers[0] == 42
    assert isinstance(device.answers[1], RuntimeError) and "nobody" in str(device.answers[1])


def test_the_state_api_lists_the_device_and_its_actors_on_the_bridges_worker(device_cluster: tuple[Device, Any]) -> None:
    _device, bridge = device_cluster
    (listed,) = nexus.state.list_devices()
    assert (listed.key, listed.port, listed.state) == ("thermo01", bridge.port, "open")
    assert listed.actors == {"thermo": ["read", "add", "note", "fail"]}
    actors = {a.name: a for a in nexus.state.list_actors()}
    bridge_actor, thermo = actors[f"bridge:{bridge.port}"], actors["device:thermo01/thermo"]
    assert (thermo.class_name, thermo.state, thermo.worker) == ("device actor", "alive", bridge_actor.worker)
    _workers, placed, _running = nexus.state.placement()
    assert "device:thermo01/thermo" in {a.name for a in placed}


def test_a_second_bridge_on_the_same_port_and_a_port_that_is_not_there_are_refused(device_cluster: tuple[Device, Any]) -> None:
    _device, bridge = device_cluster
    with pytest.raises(Exception, match="bridge:"):
        nexus.attach_bridge(bridge.port)
    with pytest.raises(Exception, match="/dev/nexus-no-such-port"):
        nexus.attach_bridge("/dev/nexus-no-such-port")
    with pytest.raises(TypeError, match="unexpected option"):
        nexus.attach_bridge(bridge.port, speed=9600)


def test_when_the_device_goes_calls_fail_and_when_the_bridge_goes_too(device_cluster: tuple[Device, Any]) -> None:
    device, bridge = device_cluster
    thermo = nexus.get_actor("device:thermo01/thermo")
    device.stop()
    with pytest.raises(DeviceGoneError):
        for _ in range(100):  # (until the bridge has let the silent device go)
            nexus.get(thermo.read.remote(), timeout=30)
    bridge.close()
    with pytest.raises(nexus.core.NexusError):
        nexus.get(thermo.read.remote(), timeout=30)
    assert nexus.state.list_devices() == []


def test_a_bridge_can_limit_which_actors_its_device_calls() -> None:
    from nexus.cluster.bridge.actor import BridgeActor

    bridge = BridgeActor.__new__(BridgeActor)  # (its call-out rule alone, without a line)
    bridge.allow = frozenset({"counter"})
    with pytest.raises(PermissionError, match=r"lets its device call \['counter'\], not 'vault'"):
        bridge._outcall("vault", "open", [])
    bridge.allow = None  # (any actor: still not a bridge, nor a method that is not public)
    with pytest.raises(PermissionError, match="not a bridge"):
        bridge._outcall("bridge:/dev/ttyACM1", "_manage", ["kill", [{"actor": "x"}]])
    with pytest.raises(PermissionError, match="public methods, not '_reset'"):
        bridge._outcall("counter", "_reset", [])


def test_a_local_cluster_runs_no_operator_commands_and_manage_takes_read_or_all(device_cluster: tuple[Device, Any]) -> None:
    from nexus.cluster.session import current_driver

    with pytest.raises(nexus.core.NexusError, match="nexus start --head"):
        current_driver("the test").control("manage", "status", {"brief": True}, "read")
    with pytest.raises(ValueError, match="manage is None, 'read' or 'all', not 'write'"):
        nexus.attach_bridge("/dev/null", manage="write")
