"""The C99 client, built with gcc into a host program (host_main.c) and run over a pty against the bridge."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexus.cluster.bridge.device import build_host_program, host_program_on_pty
from nexus.cluster.bridge.link import DeviceCallError, SerialBridge
from tests.conftest import wait_until

if not shutil.which("gcc"):
    if os.environ.get("NEXUS_REQUIRE_GCC"):
        raise RuntimeError("NEXUS_REQUIRE_GCC is set but gcc is missing")
    pytest.skip("needs gcc", allow_module_level=True)


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_host_program(tmp_path_factory.mktemp("c-client") / "nexus-device", strict=True)


@pytest.fixture
def device(program: Path) -> Iterator[str]:
    """The program on a pty; the path of the pty's other end, for the bridge."""
    with host_program_on_pty(program, "calc0001") as path:
        yield path


def test_the_c_client_serves_its_actor_publishes_telemetry_and_calls_the_cluster(device: str) -> None:
    asked = []

    def outcall(actor: str, method: str, args: list) -> int:
        asked.append((actor, method, args))
        return args[0] + 100

    with SerialBridge(device, outcall=outcall) as bridge:
        assert bridge.wait_device(10, actors=1) == b"calc0001"
        assert bridge.actors == {"calc": ("add", "mul", "fail", "ask")}
        assert [bridge.call("calc", "add", [n, 2]).result(10) for n in range(10)] == [n + 2 for n in range(10)]
        assert bridge.call("calc", "mul", [-3, 7]).result(10) == -21
        assert bridge.call("calc", "add", [1.5, 2]).result(10) == 3.5
        assert bridge.call("calc", "add", [100000, 1]).result(10) == 100001
        with pytest.raises(DeviceCallError, match="asked to fail"):
            bridge.call("calc", "fail").result(10)
        with pytest.raises(DeviceCallError, match="numbers only"):
            bridge.call("calc", "add", ["x", 1]).result(10)
        assert bridge.call("calc", "ask", [5]).result(10) == 105
        assert asked == [("counter", "incr", [5])]
        wait_until(lambda: bridge.describe()["telemetry"].get("calls", 0) >= 14)
        statistics = bridge.describe()["statistics"]
        assert statistics["malformed"] == 0 and statistics["rejected"] == {}


def test_the_c_client_on_a_damaged_line_answers_every_call_it_takes_correctly(program: Path, tmp_path: Path) -> None:
    from concurrent.futures import wait

    from nexus.cluster.bridge.link import DeviceGoneError

    from .test_link import FaultyLine

    faulty = FaultyLine(tmp_path, seed=7, rate=0.001)
    proc = subprocess.Popen([str(program), f"fd:{faulty.device_master}", "calc0001"], pass_fds=(faulty.device_master,))
    try:
        with SerialBridge(str(faulty.path), call_timeout=30) as bridge:
            bridge.wait_device(20, actors=1)
            futures = [bridge.call("calc", "add", [n, 1000]) for n in range(40)]
            wait(futures, timeout=60)
            answered = 0
            for n, future in enumerate(futures):
                with contextlib.suppress(DeviceGoneError):
                    assert future.result(0) == n + 1000
                    answered += 1
            statistics = bridge.describe()["statistics"]
            assert faulty.damaged > 10 and sum(statistics["rejected"].values()) > 0, statistics
            if statistics["sessions"] == 1:
                assert answered == 40
    finally:
        proc.kill()
        proc.wait(10)
        faulty.close()
