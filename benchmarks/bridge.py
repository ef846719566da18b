"""Benchmark "bridge": the device bridge's frames and calls, over a pty and through QEMU, against the line's rate.

frames parsed          DATA frames per second the bridge's reader and session take from a byte stream (no line)
calls, Python client   round trips one at a time to the MicroPython client run by CPython, over a pty
calls, C client        the same to the C client's host program (gcc), over a pty
calls, micro:bit       the MicroPython client on the micro:bit's firmware in QEMU (its UART a pty)
calls, Cortex-M3       the C client cross-built for QEMU's lm3s6965evb (its UART0 a pty)
line at 115200 baud    the round trips a real 115200-baud line carries, from the bytes a call puts on it
                       (a pty and QEMU's UART do not pace bytes as a line does: they show the software's cost)

The notes say the device's memory: the heap the MicroPython client takes on the micro:bit
(``gc.mem_free()`` before and after it is loaded) and the Cortex-M3 build's sizes (``arm-none-eabi-size``).
There is no peer: the anchors (the micro-ROS agent, zenoh-pico) do not install here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from nexus.cluster.bridge.device import build_cortex_m3, build_host_program, host_program_on_pty, qemu_board, upload

from .harness import BenchmarkResult, Figure, progress, rate

NAME = "bridge"
FIRMWARE = Path("/usr/share/firmware-microbit-micropython/firmware.hex")
BAUD = 115200


def _frames_parsed(n: int) -> float:
    from nexus.cluster.bridge.frames import FrameReader, FrameType, encode_frame
    from nexus.cluster.bridge.session import HELLO, BridgeSession
    from nexus.cluster.bridge.streams import ACKNACK

    session = BridgeSession()
    stream = encode_frame(FrameType.INIT, 0, 0, 0, HELLO.pack(b"bench001", 128, 8, 500))
    stream += b"".join(encode_frame(FrameType.DATA, 1, i & 0xFFFF, 0x45, b"\x82\x64temp\xfa\x41\xac\x00\x00") for i in range(n))
    reader = FrameReader()
    start = time.perf_counter()
    for at in range(0, len(stream), 4096):
        for frame in reader.feed(stream[at : at + 4096]):
            session.on_frame(frame, 0.0)
        session.take()
    seconds = time.perf_counter() - start
    assert ACKNACK.unpack(session.receiver.acknack())[0] == n & 0xFFFF
    return rate(n, seconds)


def _round_trips(path: str, actor: str, method: str, n: int) -> tuple[float, int]:
    """Calls one at a time through a bridge on ``path``: (calls/s, bytes on the line per call)."""
    from nexus.cluster.bridge.link import SerialBridge

    with SerialBridge(path, call_timeout=20) as bridge:
        bridge.wait_device(30, actors=1)
        for i in range(10):  # warm-up
            bridge.call(actor, method, [i, 1]).result(20)
        start_out, start_in = _line_bytes(bridge)
        start = time.perf_counter()
        for i in range(n):
            bridge.call(actor, method, [i, 1]).result(20)
        seconds = time.perf_counter() - start
        end_out, end_in = _line_bytes(bridge)
    return rate(n, seconds), round((end_out - start_out + end_in - start_in) / n)


def _line_bytes(bridge: object) -> tuple[int, int]:
    stats = bridge.stats  # type: ignore[attr-defined]
    return stats.bytes_out, stats.bytes_in


@contextlib.contextmanager
def _python_device() -> Iterator[str]:
    from nexus.cluster.bridge.device import FdUart
    from nexus.cluster.bridge.device.nexus_device import Client

    class Calc:
        def add(self, a: int, b: int) -> int:
            return a + b

    master, slave = os.openpty()
    client = Client(FdUart(master), b"bench001")
    client.actor("calc", Calc(), ("add",))
    running = [True]

    def serve() -> None:
        while running[0]:
            client.step()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield os.ttyname(slave)
    finally:
        running[0] = False
        thread.join(5)
        for fd in (master, slave):
            os.close(fd)


MICROBIT_APP = """\
import microbit
import micropython
class Calc:
    def add(self, a, b):
        return a + b
c = Client(microbit.uart, b"bench001")
c.actor("calc", Calc(), ("add",))
"""


def run(quick: bool) -> BenchmarkResult:
    n = 100 if quick else 1000
    rounds = 1 if quick else 3
    samples: dict[str, list[float]] = {}
    notes: list[str] = []
    per_call: dict[str, int] = {}

    def measure(key: str, setup: Callable[[], contextlib.AbstractContextManager[str]], calls: int) -> None:
        with setup() as path:
            value, line_bytes = _round_trips(path, "calc", "add", calls)
        samples.setdefault(key, []).append(value)
        per_call[key] = line_bytes

    with tempfile.TemporaryDirectory(prefix="nexus-bench-bridge-") as tmp:
        folder = Path(tmp)
        m3 = program = None
        if shutil.which("gcc"):
            program = build_host_program(folder / "nexus-device")
        if shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"):
            m3 = folder / "nexus-m3.elf"
            sizes = build_cortex_m3(m3)
            notes.append(
                f"C client on the Cortex-M3 (arm-none-eabi-size of the whole firmware): text {sizes['text']:,} B, "
                f"data {sizes['data']:,} B, bss {sizes['bss']:,} B"
            )
        for _ in range(rounds):
            samples.setdefault("frames", []).append(_frames_parsed(20_000 if quick else 200_000))
            measure("python_pty", _python_device, n)
            if program is not None:
                measure("c_pty", lambda: host_program_on_pty(program, "bench001"), n)
            if not quick and m3 is not None:
                measure("m3_qemu", lambda: qemu_board("lm3s6965evb", "-kernel", str(m3)), n // 2)
            if not quick and shutil.which("qemu-system-arm") and FIRMWARE.exists():
                with qemu_board("microbit", "-device", f"loader,file={FIRMWARE}") as path:
                    loaded = upload(path, MICROBIT_APP, "while 1:micropython.kbd_intr(-1);c.step()\n", timeout=60)
                    value, line_bytes = _round_trips(path, "calc", "add", n // 4)
                samples.setdefault("microbit_qemu", []).append(value)
                per_call["microbit_qemu"] = line_bytes
                memory = (
                    f"MicroPython client on the micro:bit: {loaded.client_bytes:,} B of its {loaded.free_before:,} B free heap "
                    f"(gc.mem_free() before and after loading); {loaded.free_after:,} B left with the application"
                )
                if memory not in notes:
                    notes.append(memory)
            progress(f"bridge: round done ({', '.join(f'{k} {v[-1]:,.0f}/s' for k, v in samples.items())})")
    call_bytes = max(per_call.values(), default=0) or 90
    line = BAUD / 10 / call_bytes  # 8N1: ten bits a byte
    notes.append(f"a call puts about {call_bytes} bytes on the line both ways (CALL, its ACKNACK, REPLY, its ACKNACK)")
    labels = {
        "frames": "DATA frames the bridge reads and takes in (no line)",
        "python_pty": "calls one at a time: MicroPython client under CPython, pty",
        "c_pty": "calls one at a time: C client (gcc host program), pty",
        "m3_qemu": "calls one at a time: C client on QEMU's Cortex-M3 (lm3s6965evb)",
        "microbit_qemu": "calls one at a time: MicroPython on QEMU's micro:bit",
    }
    figures = [Figure(key, labels[key], "/s", values, None) for key, values in samples.items()]
    figures.append(Figure("line_115200", f"calls one at a time a {BAUD}-baud line carries ({call_bytes} B a call)", "/s", [line], None))
    return BenchmarkResult(
        name=NAME,
        title="The device bridge: frames and calls, against the line's rate",
        figures=figures,
        peer="none",
        peer_label="-",
        peer_available=True,
        method=f"median of {rounds} rounds; {n:,} calls over the ptys, {n // 2:,} to the Cortex-M3, {n // 4:,} to the micro:bit",
        notes=notes,
    )
