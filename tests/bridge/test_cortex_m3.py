"""The C client cross-built for a Cortex-M3 board (arm-none-eabi-gcc, no OS: cortex_m3.c), run by QEMU's
lm3s6965evb with its UART0 on a pty, and called through the bridge and through the cluster.

Skipped where the cross compiler or QEMU is missing, unless NEXUS_REQUIRE_ARM=1 (CI sets it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import nexus
from nexus.cluster.bridge.device import build_cortex_m3, qemu_board
from nexus.cluster.bridge.link import DeviceCallError, SerialBridge

if not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")):
    if os.environ.get("NEXUS_REQUIRE_ARM"):
        raise RuntimeError("NEXUS_REQUIRE_ARM is set but arm-none-eabi-gcc or qemu-system-arm is missing")
    pytest.skip("needs gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm (Debian)", allow_module_level=True)


@pytest.fixture(scope="module")
def firmware(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("m3") / "nexus-m3.elf"
    build_cortex_m3(out, strict=True)
    return out


@pytest.fixture
def board(firmware: Path) -> Iterator[str]:
    with qemu_board("lm3s6965evb", "-kernel", str(firmware)) as path:
        yield path


def test_the_cross_built_c_client_on_an_emulated_cortex_m3_serves_its_actor(board: str) -> None:
    with SerialBridge(board) as bridge:
        assert bridge.wait_device(20, actors=1) == b"cortexm3"
        assert bridge.actors == {"calc": ("add", "mul", "fail")}
        assert [bridge.call("calc", "add", [n, 2]).result(10) for n in range(20)] == [n + 2 for n in range(20)]
        assert bridge.call("calc", "mul", [-3, 7]).result(10) == -21
        with pytest.raises(DeviceCallError, match="asked to fail"):
            bridge.call("calc", "fail").result(10)
        with pytest.raises(DeviceCallError, match="integers only"):
            bridge.call("calc", "add", [0.5, 1]).result(10)
        assert bridge.describe()["statistics"]["rejected"] == {}


def test_the_cortex_m3_boards_actor_is_called_from_the_cluster(board: str) -> None:
    nexus.init(num_cpus=1)
    try:
        nexus.attach_bridge(board, wait=20).wait_device(20, actors=1)
        calc = nexus.get_actor("device:cortexm3/calc")
        assert nexus.get([calc.mul.remote(n, 3) for n in range(10)], timeout=60) == [3 * n for n in range(10)]
    finally:
        nexus.shutdown()
