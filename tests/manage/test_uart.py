"""The UART ManagementPort: a device on a real serial line (a pty; the MicroPython client run by CPython) sends an
operator's commands through its bridge to a head started by ``nexus start --head``, with a node joined."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import nexus
from nexus.core.errors import ActorDiedError
from tests.bridge.test_cluster import Device
from tests.conftest import wait_until
from tests.remote.test_membership import Home


class _Line:
    """A pty with a device on one end and a bridge on the other, its device's answers read back in order."""

    def __init__(self, key: bytes, manage: str | None, node: str) -> None:
        self.master, self.slave = os.openpty()
        self.device = Device(self.master, key, mtu=240)  # (the client's frames have CRC-16: at most 244 bytes a payload)
        self.bridge = nexus.attach_bridge(os.ttyname(self.slave), node=node, wait=30, manage=manage, mtu=240)
        self.bridge.wait_device(30, actors=1)

    def ask(self, command: str, args: Any = None) -> Any:
        """What the device got back for ``command`` (the answer, or the error it raised)."""
        return self.call("nexus:manage", command, () if args is None else (args,))

    def call(self, actor: str, method: str, args: tuple[Any, ...]) -> Any:
        """What the device got back when it called out to ``actor.method(*args)`` (the client waits 10 s at most)."""
        seen = len(self.device.answers)
        self.device.outbox.append((actor, method, args))
        wait_until(lambda: len(self.device.answers) > seen, timeout=60)
        return self.device.answers[seen]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.bridge.close()
        self.device.stop()
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture(scope="module")
def lines(head: Home) -> Iterator[dict[str, _Line]]:
    made: dict[str, _Line] = {}
    on_head, joined = [n["NodeID"] for n in sorted(nexus.nodes(), key=lambda n: n["Resources"]["CPU"], reverse=True)]
    try:  # (the reading one on the joined node: its commands go to the head from another host's worker)
        for level, key, node in (("read", b"reader01", joined), ("all", b"admin001", on_head), ("none", b"nobody01", joined)):
            made[level] = _Line(key, None if level == "none" else level, node)
        yield made
    finally:
        for line in made.values():
            line.close()


@nexus.remote
class Target:
    def ping(self) -> str:
        return "pong"


def test_a_device_reads_the_clusters_status_and_lists_over_its_serial_line(head: Home, lines: dict[str, _Line]) -> None:
    status = lines["read"].ask("status", {"brief": True})
    assert status["alive"] == 2 and status["nodes"] == 2 and status["cpu"][1] == 3.0, status
    assert isinstance(status["actors"], dict) and isinstance(status["tasks"], dict)
    nodes = lines["read"].ask("list", {"kind": "nodes", "fields": ["node_id", "alive"]})
    assert isinstance(nodes, list) and [n["alive"] for n in nodes] == [True, True] and set(nodes[0]) == {"node_id", "alive"}, nodes
    one = lines["read"].ask("list", {"kind": "nodes", "fields": "node_id", "limit": 1})
    assert one == [{"node_id": nodes[0]["node_id"]}], one
    alive = lines["read"].ask("list", {"kind": "actors", "filter": ["state=alive"], "fields": ["name", "state"], "limit": 3})
    assert isinstance(alive, list) and alive and all(a["state"] == "alive" for a in alive), alive
    assert "no field 'colour'" in str(lines["read"].ask("list", {"kind": "nodes", "fields": ["colour"]}))
    served = lines["read"].ask("status", {"brief": False})
    assert isinstance(served, Exception) and "MTU" in str(served), "the full status is over what the line carries"


def test_a_read_only_bridge_changes_nothing_and_a_bridge_without_manage_takes_no_command(head: Home, lines: dict[str, _Line]) -> None:
    target = Target.options(name="uart-target", lifetime="detached").remote()
    assert nexus.get(target.ping.remote(), timeout=60) == "pong"
    refused = lines["read"].ask("kill", {"actor": "uart-target"})
    assert isinstance(refused, Exception) and "changes the cluster" in str(refused), refused
    other = "bridge:" + os.ttyname(lines["all"].slave)  # (through the other bridge, with its rights: no)
    assert "not a bridge" in str(lines["read"].call(other, "_manage", ("kill", [{"actor": "uart-target"}])))
    assert "manage=" in str(lines["none"].ask("status", {"brief": True}))
    assert nexus.get(target.ping.remote(), timeout=60) == "pong", "nothing was killed"

    killed = lines["all"].ask("kill", {"actor": "uart-target"})
    assert isinstance(killed, dict) and killed["killed"] is True and killed["actor_id"], killed
    with pytest.raises(ActorDiedError):
        nexus.get(target.ping.remote(), timeout=60)


def test_malformed_commands_are_answered_and_counted_and_the_line_goes_on(head: Home, lines: dict[str, _Line]) -> None:
    line = lines["all"]
    before = line.ask("status", {"brief": True})
    assert "changes the cluster" in str(lines["read"].ask("drain", {"node": "ffffff"}))
    assert "no command" in str(line.ask("reboot", {}))
    assert "unknown argument" in str(line.ask("status", {"verbose": 1}))
    assert "kind is one of" in str(line.ask("list", {"kind": 7}))
    assert "REST port" in str(line.ask("dump", {}))
    assert "one map" in str(line.call("nexus:manage", "status", (1, 2))), "two values, not one map"
    assert line.ask("status", {"brief": True})["alive"] == before["alive"], "the bridge and the head answer on"
    assert line.bridge.describe()["statistics"]["outcalls"] >= 7 and line.bridge.describe()["state"] == "open"
    found = json.loads((head.path / "head" / "management.json").read_text())
    status = httpx.get(f"http://{found['address']}/api/v1/status", headers={"Authorization": f"Bearer {found['token']}"}, timeout=30)
    counts = status.json()["result"]["ports"]["uart"]
    assert counts["served"] >= 3 and counts["malformed"] >= 4 and counts["forbidden"] >= 1, counts
