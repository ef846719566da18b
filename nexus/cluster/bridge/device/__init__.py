"""The device clients' host-side helpers: the MicroPython client's source, its loading through a raw REPL, a UART over a file descriptor.

:mod:`.nexus_device` is the MicroPython client itself (it runs on the
device as it is, and under CPython for tests and for host programs that act
as devices). :func:`upload` loads it and an application onto a MicroPython
board through the raw REPL (Ctrl-A, code, Ctrl-D), one piece at a time so
that a 9 KB heap compiles each, and reports the heap that the client takes.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CLIENT_SOURCE",
    "C_SOURCE",
    "DeviceLoadError",
    "FdUart",
    "Loaded",
    "build_cortex_m3",
    "build_host_program",
    "host_program_on_pty",
    "pieces",
    "qemu_board",
    "upload",
]

CLIENT_SOURCE = Path(__file__).with_name("nexus_device.py")
C_SOURCE = Path(__file__).with_name("c")  # the C client (nexus_device.c/.h), a host program, a Cortex-M3 build
_STRICT = ["-Wall", "-Wextra", "-Wpedantic", "-Werror"]
_DEF = re.compile(r"^    def (\w+)\(", re.M)
_CLASS = re.compile(r"^class (\w+)", re.M)


class DeviceLoadError(RuntimeError):
    """The device did not take the code: no raw REPL answered, or the code raised (its traceback is in the message)."""


def _minified(block: list[str]) -> str:
    """A block's lines without comments and blank lines, indented one space a level (the device keeps the text it
    was sent in its REPL's buffer, sized to the largest piece)."""
    out = []
    for line in block:
        body = line.strip()
        if not body or body.startswith("#"):
            continue
        depth = (len(line) - len(line.lstrip(" "))) // 4
        out.append(" " * depth + body)
    return "\n".join(out) + "\n"


def pieces(source: str) -> list[str]:
    """``source`` cut into pieces that each compile alone: each top-level statement, and each method of a class.

    A class's first method goes with it; each later one becomes a class of its own (``_M``) whose function is
    then set on the class it belongs to. The device compiles a piece at a time, which a 9 KB heap can.
    """
    blocks: list[tuple[str, list[str]]] = []  # (the class it continues, or "", its lines)
    cls = ""
    for line in source.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            if blocks:
                blocks[-1][1].append(line)
            continue
        top = not line.startswith(" ")
        method = line.startswith("    def ") or line.startswith("    @")
        if top and not line.startswith(("else", "except", "elif", "finally")):
            found = _CLASS.match(line)
            cls = found.group(1) if found else ""
            blocks.append(("", [line]))
        elif method and cls and _DEF.search("\n".join(blocks[-1][1])) and not blocks[-1][1][-1].startswith("    @"):
            blocks.append((cls, [line]))  # a later method: its own piece
        else:
            blocks[-1][1].append(line)
    out: list[str] = []
    for owner, lines in blocks:
        text = _minified(lines)
        if owner:
            names = _DEF.findall("\n".join(lines))
            text = "class _M:\n" + text + "".join(f"{owner}.{n} = _M.{n}\n" for n in names) + "del _M\n"
        if (
            out
            and not owner
            and not text.startswith(("def ", "class ", "@"))
            and not out[-1].startswith(("def ", "class "))
            and len(out[-1]) + len(text) < 400
        ):
            out[-1] += text  # (short statements go together)
        else:
            out.append(text)
    return out


@dataclass(frozen=True)
class Loaded:
    free_before: int  # gc.mem_free() on the device before the client was loaded (after a collection)
    free_loaded: int  # with the client's code in memory
    free_after: int  # and with the application's too, before it starts

    @property
    def client_bytes(self) -> int:
        return self.free_before - self.free_loaded


def _read_until(port: Any, marker: bytes, timeout: float, what: str) -> bytes:
    data = bytearray()
    deadline = time.monotonic() + timeout
    while not data.endswith(marker):
        if time.monotonic() > deadline:
            raise DeviceLoadError(f"the device did not answer {what} within {timeout:g} s (it said {bytes(data[-200:])!r})")
        data += port.read(1)
    return bytes(data)


def _quiet(port: Any, gap: float, timeout: float) -> None:
    """Read until the device has said nothing for ``gap`` seconds (a banner, echoes, prompts that come late)."""
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    while time.monotonic() - last < gap:
        if time.monotonic() > deadline:
            raise DeviceLoadError(f"the device did not fall quiet within {timeout:g} s: is something running that prints?")
        if port.read(256):
            last = time.monotonic()


def _run(port: Any, code: str, timeout: float, attempts: int = 3) -> str:
    """One piece through the raw REPL: its printed output; DeviceLoadError with its traceback if it raised.

    A board that is slow to read (or an emulated one on a busy machine) loses bytes that come too fast: the
    piece goes a little at a time, and again (after a Ctrl-C, which clears the raw REPL's line) when its
    Ctrl-D went missing or what arrived did not parse.
    """
    raw = code.encode()
    error = b""
    for _attempt in range(attempts):
        port.write(b"\x03")
        for start in range(0, len(raw), 16):
            port.write(raw[start : start + 16])
            port.flush()
            time.sleep(0.01)
        port.write(b"\x04")
        try:
            _read_until(port, b"OK", min(timeout, 5.0), "the raw REPL's OK")
        except DeviceLoadError:
            continue
        output = _read_until(port, b"\x04", timeout, "the end of the output")[:-1]
        error = _read_until(port, b"\x04", timeout, "the end of the error output")[:-1]
        _read_until(port, b">", timeout, "the raw REPL's prompt")
        if b"SyntaxError" in error or b"IndentationError" in error:
            continue
        if not error:
            return output.decode(errors="replace")
        break
    lines = code.strip().splitlines()
    first = next((x.strip() for x in lines if x.lstrip().startswith(("def ", "class ")) and "_M:" not in x), lines[0])[:60]
    said = error.decode(errors="replace") or f"no answer after {attempts} tries"
    raise DeviceLoadError(f"the device did not take the piece that starts {first!r}:\n{said}")


def _raw(line: Any, source: str, timeout: float) -> None:
    """``source`` through the raw REPL piece by piece, then back to the friendly REPL (which frees the raw REPL's
    buffer: it keeps the largest piece it was sent)."""
    line.write(b"\x01")
    _read_until(line, b"raw REPL; CTRL-B to exit\r\n>", timeout, "Ctrl-A with its raw REPL")
    parts = pieces(source)
    # The raw REPL grows its buffer a little at a time to the largest piece it is sent: grown at once, first, it
    # leaves no holes between the code that comes after (a 9 KB heap has no room for them).
    _run(line, "import gc\n" + "#" * max(len(p) for p in parts) + "\n", timeout)
    for piece in parts:
        _run(line, piece, timeout)
        _run(line, "gc.collect()\n", timeout)  # (the parser's garbage gone before the next piece: fewer holes)
    line.write(b"\x02")
    _read_until(line, b">>> ", timeout, "Ctrl-B with its prompt")
    _quiet(line, 0.2, timeout)


def _type(line: Any, statement: bytes, timeout: float) -> None:
    """One line typed at the friendly REPL, a few keys at a time, each echoed before the next (a busy board's
    receive buffer overflows when a line comes at once)."""
    for start in range(0, len(statement), 8):
        keys = statement[start : start + 8]
        line.write(keys)
        line.flush()
        _read_until(line, keys, timeout, f"the echo of {keys!r}")
    line.write(b"\r")
    _read_until(line, b"\r\n", timeout, "the echo of the end of a line")


def _free(line: Any, timeout: float) -> int:
    """``gc.mem_free()`` after a collection, asked at the friendly REPL."""
    _type(line, b"import gc;gc.collect();gc.mem_free()", timeout)
    said = ""
    deadline = time.monotonic() + timeout
    while not (numbers := re.findall(r"^(\d+)\r?$", said, re.M)):  # (prompts left from before come first)
        said += _read_until(line, b"\r\n>>> ", max(0.1, deadline - time.monotonic()), "gc.mem_free()").decode(errors="replace")
    return int(numbers[-1])


def upload(port: str, application: str, start: str, *, baud: int = 115200, timeout: float = 20.0) -> Loaded:
    """Load the client and ``application`` onto a MicroPython board, then run ``start`` (say ``"client.run()"``).

    ``port`` is the board's serial line (its REPL); ``application`` makes the
    client and its actors. The client and the application each go through the
    raw REPL piece by piece; the heap is measured before and after each. ``start`` is left running and the
    port closed, for the bridge to open.
    """
    import serial  # pyserial owns the line

    with serial.Serial(port, baud, timeout=0.1) as line:
        line.write(b"\r\x03\x03\x02\r")  # stop what runs; the friendly REPL
        _read_until(line, b">>> ", timeout, "Ctrl-C with its prompt")
        _quiet(line, 0.3, timeout)
        before = _free(line, timeout)
        _raw(line, CLIENT_SOURCE.read_text(), timeout)
        loaded = _free(line, timeout)
        _raw(line, application, timeout)
        after = _free(line, timeout)
        for statement in start.encode().split(b"\n"):  # (typed at the friendly REPL: a compound one ends in a blank line)
            _type(line, statement, timeout)
    return Loaded(before, loaded, after)


class FdUart:
    """What the client needs of ``microbit.uart`` (``read``, ``write``), over a file descriptor (a pty, a tty) in CPython."""

    def __init__(self, fd: int, poll: float = 0.005) -> None:
        self.fd, self.poll = fd, poll

    def read(self) -> bytes | None:
        ready, _, _ = select.select([self.fd], [], [], self.poll)
        if not ready:
            return None
        try:
            return os.read(self.fd, 4096) or None
        except OSError:  # (the other end is gone: as a board whose line is unplugged, nothing comes)
            time.sleep(self.poll)
            return None

    def write(self, data: bytes) -> None:
        view = memoryview(bytes(data))
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:
                select.select([], [self.fd], [], self.poll)
            except OSError:
                return  # (unplugged: what is written is lost, as on a real line)


def build_host_program(out: Path, strict: bool = False) -> Path:
    """The C client's host program (``host_main.c``: a "calc" actor on a tty or a given fd), built by gcc."""
    flags = ["-std=c99", "-D_DEFAULT_SOURCE", "-O2", *(_STRICT if strict else [])]
    subprocess.run(["gcc", *flags, "-o", str(out), str(C_SOURCE / "nexus_device.c"), str(C_SOURCE / "host_main.c")], check=True)
    return out


@contextmanager
def host_program_on_pty(program: Path, key: str) -> Iterator[str]:
    """The host program (:func:`build_host_program`) running as device ``key`` (8 characters) on a new pty: the
    path of the pty's other end, for the bridge. The program is killed afterwards."""
    master, slave = os.openpty()
    proc = subprocess.Popen([str(program), f"fd:{master}", key], pass_fds=(master,))
    try:
        yield os.ttyname(slave)
    finally:
        proc.kill()
        proc.wait(10)
        for fd in (master, slave):
            os.close(fd)


def build_cortex_m3(out: Path, strict: bool = False) -> dict[str, int]:
    """The C client for QEMU's lm3s6965evb (``cortex_m3.c``, no OS), built by arm-none-eabi-gcc into ``out`` (an
    ELF for ``qemu-system-arm -M lm3s6965evb -kernel``); its sizes as ``arm-none-eabi-size`` says them."""
    flags = ["-std=c99", "-mcpu=cortex-m3", "-mthumb", "-Os", "-ffunction-sections", "-fdata-sections", *(_STRICT if strict else [])]
    link = ["-Wl,--gc-sections", "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs", "-T", str(C_SOURCE / "lm3s6965.ld")]
    sources = [str(C_SOURCE / "cortex_m3.c"), str(C_SOURCE / "nexus_device.c")]
    subprocess.run(["arm-none-eabi-gcc", *flags, *link, "-o", str(out), *sources], check=True)
    said = subprocess.run(["arm-none-eabi-size", str(out)], check=True, capture_output=True, text=True).stdout.splitlines()[1].split()
    return {"text": int(said[0]), "data": int(said[1]), "bss": int(said[2])}


@contextmanager
def qemu_board(machine: str, *args: str, timeout: float = 30.0) -> Iterator[str]:
    """``qemu-system-arm -M machine ...`` running with the board's UART on a pty: the pty's path (QEMU is killed
    afterwards). For the micro:bit: ``qemu_board("microbit", "-device", "loader,file=<firmware.hex>")``."""
    qemu = subprocess.Popen(
        ["qemu-system-arm", "-M", machine, *args, "-nographic", "-serial", "pty", "-monitor", "none"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert qemu.stdout is not None
    try:
        said = b""
        deadline = time.monotonic() + timeout
        while not (found := re.search(rb"(/dev/pts/\d+)", said)) or not said.endswith(b"\n"):
            if time.monotonic() > deadline or qemu.poll() is not None:
                raise DeviceLoadError(f"QEMU ({machine}) did not give its UART's pty: {said.decode(errors='replace')!r}")
            said += qemu.stdout.read(1)
        yield found.group(1).decode()
    finally:
        qemu.kill()
        qemu.wait(10)
        qemu.stdout.close()
