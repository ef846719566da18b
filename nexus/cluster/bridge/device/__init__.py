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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CLIENT_SOURCE", "DeviceLoadError", "FdUart", "Loaded", "pieces", "upload"]

CLIENT_SOURCE = Path(__file__).with_name("nexus_device.py")
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


def _run(port: Any, code: str, timeout: float, wait: bool = True) -> str:
    """One piece through the raw REPL: its printed output; DeviceLoadError with its traceback if it raised."""
    raw = code.encode()
    for start in range(0, len(raw), 32):  # a board's receive buffer is small and the REPL slow: a little at a time
        port.write(raw[start : start + 32])
        port.flush()
        time.sleep(0.01)
    port.write(b"\x04")
    _read_until(port, b"OK", timeout, "the raw REPL's OK")
    if not wait:
        return ""
    output = _read_until(port, b"\x04", timeout, "the end of the output")[:-1]
    error = _read_until(port, b"\x04", timeout, "the end of the error output")[:-1]
    _read_until(port, b">", timeout, "the raw REPL's prompt")
    if error:
        lines = code.strip().splitlines()
        first = next((x.strip() for x in lines if x.lstrip().startswith(("def ", "class ")) and "_M:" not in x), lines[0])[:60]
        raise DeviceLoadError(f"the device raised while loading the piece that starts {first!r}:\n{error.decode(errors='replace')}")
    return output.decode(errors="replace")


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


def _free(line: Any, timeout: float) -> int:
    """``gc.mem_free()`` after a collection, asked at the friendly REPL."""
    line.write(b"import gc;gc.collect();gc.mem_free()\r")
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
            line.write(statement + b"\r")
            line.flush()
            _read_until(line, statement + b"\r\n", timeout, "the start of the application")
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
