"""The bridge's serial line: pyserial owns the port, a thread reads it; calls to the device's actors, and its calls out.

:class:`SerialBridge` opens the port (a tty, a USB serial adapter, a pty),
feeds what it reads to a :class:`~.frames.FrameReader` and the device's
:class:`~.session.BridgeSession`, and writes what the session says. It keeps
the device's actors as the device registers them (again after a reboot: the
same names are reused by every handle, names it no longer registers are gone), answers the device's calls out
through ``outcall`` (on a thread of its own, so that the line keeps going),
and keeps the latest telemetry. A call returns a
:class:`concurrent.futures.Future` that always ends: with the device's value,
:class:`DeviceCallError` when the device's actor raised, or
:class:`DeviceGoneError` when the device rebooted, went silent, or the port
closed, or its time ran out. An unplugged port is opened again every
``reopen`` seconds until :meth:`close`.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import termios
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .frames import DEFAULT_MTU, FrameReader
from .messages import CALL, OUTCALL, OUTREPLY, REGISTER, REPLY, TELEMETRY, MalformedMessage, decode, encode
from .session import BridgeSession, Closed, Opened, Received, SessionState

__all__ = ["DeviceCallError", "DeviceGoneError", "SerialBridge"]


class DeviceGoneError(ConnectionError):
    """The device is not there to answer: it rebooted or went silent during the call, or the line closed."""


class DeviceCallError(RuntimeError):
    """The device's actor raised; the message is the device's own (its exception's type and text)."""


@dataclass
class _Pending:
    future: Future[Any]
    deadline: float
    what: str


@dataclass
class BridgeStatistics:
    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # frames, by reason (CRC, COBS, ...)
    malformed: int = 0  # messages in good frames whose payload had the wrong shape
    retransmitted: int = 0
    sessions: int = 0  # sessions opened (a reboot opens another)
    reopened: int = 0  # times the port was opened again after it closed
    calls: int = 0
    outcalls: int = 0


class SerialBridge:
    """One serial line and the device on it."""

    def __init__(
        self,
        port: str,
        baud: int = 115200,
        *,
        mtu: int = DEFAULT_MTU,
        heartbeat: float = 0.5,
        timeout: float = 3.0,
        call_timeout: float = 10.0,
        reopen: float = 0.5,
        outcall: Callable[[str, str, list[Any]], Any] | None = None,
        on_change: Callable[[SerialBridge], None] | None = None,
    ) -> None:
        self.port_name, self.baud, self.call_timeout, self.reopen = port, baud, call_timeout, reopen
        self.outcall, self.on_change = outcall, on_change
        self.reader = FrameReader(mtu)
        self.session = BridgeSession(mtu=mtu, heartbeat=heartbeat, timeout=timeout)
        self.lock = threading.RLock()  # the session, the port's writes, the tables
        self.port: Any = None
        self.key: bytes = b""
        self.actors: dict[str, tuple[str, ...]] = {}
        self.telemetry: dict[str, tuple[Any, float]] = {}
        self.pending: dict[int, _Pending] = {}
        self.ids = itertools.count(1)
        self.stats = BridgeStatistics()
        self.last_error = ""
        self.stopped = threading.Event()
        self.opened = threading.Event()  # a device session is open
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="nexus-bridge-outcall")
        self.thread = threading.Thread(target=self._run, name=f"nexus-bridge {port}", daemon=True)

    # -- life --------------------------------------------------------------------------------------

    def start(self) -> SerialBridge:
        self._open()  # (the first open's error is the caller's: a wrong path, a port in use)
        self.thread.start()
        return self

    def close(self) -> None:
        self.stopped.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(5)
        with self.lock:
            self.session.close("the bridge was closed")
            self._flush(time.monotonic())
            self._shut_port()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> SerialBridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_device(self, timeout: float = 10.0, actors: int = 0) -> bytes:
        """The device's key, once its session is open (and it registered ``actors`` actors); TimeoutError if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.session.state is SessionState.OPEN and len(self.actors) >= actors:
                    return self.key
            time.sleep(0.01)
        noise = self.reader.counts["noise"]
        tail = bytes(self.reader.noise_tail[-120:]).decode(errors="replace")
        raise TimeoutError(
            f"no device opened a session on {self.port_name} within {timeout:g} s"
            + (f" ({self.last_error})" if self.last_error else ": is it running the Nexus client at the same baud rate?")
            + (f" The line carried {noise} bytes that were not frames, ending {tail!r}." if noise else "")
        )

    # -- calls -------------------------------------------------------------------------------------

    def call(self, actor: str, method: str, args: list[Any] | tuple[Any, ...] = (), timeout: float | None = None) -> Future[Any]:
        """Call ``actor.method(*args)`` on the device: a future of its value."""
        return self._call(actor, method, args, timeout, answer=True)

    def tell(self, actor: str, method: str, args: list[Any] | tuple[Any, ...] = ()) -> None:
        """Send ``actor.method(*args)`` to the device, with no answer (delivered once, in order, unless the device goes)."""
        self._call(actor, method, args, None, answer=False)

    def _call(self, actor: str, method: str, args: Any, timeout: float | None, answer: bool) -> Future[Any]:
        future: Future[Any] = Future()
        what = f"{actor}.{method}"
        with self.lock:
            if self.session.state is not SessionState.OPEN:
                raise DeviceGoneError(f"no device is on {self.port_name} now ({self.last_error or 'it has not opened a session'})")
            methods = self.actors.get(actor)
            if methods is None:
                raise AttributeError(f"the device {self.key.hex()} has no actor {actor!r} (it registered {sorted(self.actors) or 'none'})")
            if method not in methods:
                raise AttributeError(f"the device's actor {actor!r} has no method {method!r} (it has {', '.join(methods) or 'none'})")
            call_id = next(self.ids) & 0xFFFF_FFFF or next(self.ids)
            payload = encode([call_id if answer else 0, actor, method, list(args)])
            if len(payload) > self.session.mtu:
                raise ValueError(f"the call {what} takes {len(payload)} bytes, over the device's MTU of {self.session.mtu}: send less")
            self.session.send(CALL, payload)
            self.stats.calls += 1
            if answer:
                self.pending[call_id] = _Pending(future, time.monotonic() + (timeout or self.call_timeout), what)
            else:
                future.set_result(None)
            self._flush(time.monotonic())
        return future

    # -- the line ----------------------------------------------------------------------------------

    def _open(self) -> None:
        import serial  # pyserial owns the port

        self.port = serial.Serial(self.port_name, self.baud, timeout=0.02, write_timeout=2.0, exclusive=True)
        with contextlib.suppress(OSError, AttributeError):  # (pyserial's lock is advisory: no other user opens it now)
            fcntl.ioctl(self.port.fileno(), termios.TIOCEXCL)
        self.reader = FrameReader(self.reader.mtu)  # (what a closed port left half-read is noise)

    def _shut_port(self) -> None:
        if self.port is not None:
            try:
                with contextlib.suppress(OSError, AttributeError, ValueError):
                    fcntl.ioctl(self.port.fileno(), termios.TIOCNXCL)
                self.port.close()
            except OSError:
                pass
            self.port = None

    def _run(self) -> None:
        import serial

        while not self.stopped.is_set():
            if self.port is None:
                try:
                    self._open()
                    self.stats.reopened += 1
                except (serial.SerialException, OSError) as exc:
                    self.last_error = f"the port {self.port_name} is closed: {exc}"
                    self.stopped.wait(self.reopen)
                    continue
            try:
                data = self.port.read(self.port.in_waiting or 1)
            except (serial.SerialException, OSError, TypeError) as exc:  # (pyserial's TypeError: the fd went away under it)
                self._lost(f"the port {self.port_name} closed ({exc})")
                continue
            with self.lock:
                now = time.monotonic()
                self.stats.bytes_in += len(data)
                for frame in self.reader.feed(data) if data else ():
                    self.stats.frames_in += 1
                    self.session.on_frame(frame, now)
                self._flush(now)  # (which ticks the session too)
                self._expire(now)

    def _lost(self, why: str) -> None:
        with self.lock:
            self.last_error = why
            self.session.close(why)
            self._shut_port()
            self._flush(time.monotonic())
        self.stopped.wait(self.reopen)

    def _flush(self, now: float) -> None:
        """Write what the session has for the line and act on its events (the lock held)."""
        self.session.tick(now)
        output, events = self.session.take()
        if output and self.port is not None:
            try:
                data = b"".join(output)
                self.port.write(data)
                self.stats.frames_out += len(output)
                self.stats.bytes_out += len(data)
            except Exception as exc:  # (a write to a port that just closed: the reader sees it too)
                self.last_error = f"writing to {self.port_name} failed: {exc}"
        for event in events:
            if isinstance(event, Received):
                self._received(event)
            elif isinstance(event, Opened):
                self._fail_all(f"the device {event.key.hex()} started its session again (it rebooted?) during the call")
                # Its actors are what it registers in this session (it does so at once): a name it registers again
                # is the same actor to every handle, one it no longer registers is gone.
                self.actors.clear()
                if event.key != self.key:
                    self.telemetry.clear()
                self.key = event.key
                self.stats.sessions += 1
                self.last_error = ""
                self._changed()
            elif isinstance(event, Closed):
                self._fail_all(f"the device {event.key.hex()} went away: {event.why}")
                self._changed()
        self.stats.retransmitted = self.session.sender.retransmitted
        self.stats.rejected = {k: v for k, v in self.reader.counts.items() if v and k not in ("frames", "noise")}

    def _received(self, event: Received) -> None:
        try:
            fields = decode(event.message_id, event.payload)
        except MalformedMessage:
            self.stats.malformed += 1
            return
        kind = event.message_id
        if kind == REPLY:
            pending = self.pending.pop(fields[0], None)
            if pending is not None and not pending.future.done():
                if fields[1]:
                    pending.future.set_result(fields[2])
                else:
                    pending.future.set_exception(DeviceCallError(f"{pending.what} on the device {self.key.hex()} raised {fields[2]}"))
        elif kind == REGISTER:
            self.actors[fields[0]] = tuple(fields[1])
            self._changed()
        elif kind == TELEMETRY:
            self.telemetry[fields[0]] = (fields[1], time.time())
        elif kind == OUTCALL:
            self.stats.outcalls += 1
            self.pool.submit(self._answer_outcall, *fields)
        else:
            self.stats.malformed += 1  # (CALL or OUTREPLY: the bridge sends those, a device does not)

    def _answer_outcall(self, call_id: int, actor: str, method: str, args: list[Any]) -> None:
        try:
            if self.outcall is None:
                raise LookupError("this bridge takes no calls from its device")
            reply = [call_id, True, self.outcall(actor, method, args)]
            payload = encode(reply)
        except Exception as exc:
            payload = encode([call_id, False, f"{type(exc).__name__}: {exc}"[: max(80, self.session.mtu - 16)]])  # (what fits)
        if not call_id:
            return
        if len(payload) > self.session.mtu:
            payload = encode([call_id, False, f"the answer of {actor}.{method} is over the device's MTU"])
        with self.lock:
            if self.session.state is SessionState.OPEN:
                self.session.send(OUTREPLY, payload)
                self._flush(time.monotonic())

    def _expire(self, now: float) -> None:
        for call_id, pending in list(self.pending.items()):
            if now > pending.deadline:
                del self.pending[call_id]
                pending.future.set_exception(DeviceGoneError(f"{pending.what}: the device {self.key.hex()} did not answer in time"))

    def _fail_all(self, why: str) -> None:
        pending, self.pending = self.pending, {}
        for entry in pending.values():
            if not entry.future.done():
                entry.future.set_exception(DeviceGoneError(f"{entry.what}: {why}"))

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change(self)
            except Exception:  # (the owner's hook must not stop the line)
                pass

    def _pending_by_actor(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self.pending.values():
            actor = entry.what.split(".", 1)[0]
            counts[actor] = counts.get(actor, 0) + 1
        return counts

    def describe(self) -> dict[str, Any]:
        """What the bridge knows now: the port, the device, its actors and telemetry, the counts."""
        with self.lock:
            return {
                "port": self.port_name,
                "baud": self.baud,
                "device": self.key.hex() if self.key else None,
                "state": self.session.state.value,
                "actors": {name: list(methods) for name, methods in self.actors.items()},
                "telemetry": {name: value for name, (value, _at) in self.telemetry.items()},
                "statistics": {**self.stats.__dict__, "pending": self._pending_by_actor()},
                "error": self.last_error,
                "noise": bytes(self.reader.noise_tail).decode(errors="replace"),  # the latest bytes that were not frames
            }
