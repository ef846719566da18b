"""Emulated boards for the device tests: QEMU with the board's UART on a pty."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def qemu_board(machine: str, *args: str) -> Iterator[str]:
    """``qemu-system-arm -M machine ...`` running: the path of its UART's pty (QEMU is killed afterwards)."""
    qemu = subprocess.Popen(
        ["qemu-system-arm", "-M", machine, *args, "-nographic", "-serial", "pty", "-monitor", "none"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert qemu.stdout is not None
    try:
        said = b""
        deadline = time.monotonic() + 30
        while not (found := re.search(rb"(/dev/pts/\d+)", said)) or not said.endswith(b"\n"):
            assert time.monotonic() < deadline and qemu.poll() is None, f"QEMU did not give its UART: {said!r}"
            said += qemu.stdout.read(1)
        yield found.group(1).decode()
    finally:
        qemu.kill()
        qemu.wait(10)
        qemu.stdout.close()
