"""The test helpers that Ray's tests import from ``ray._private.test_utils`` (and its older and newer homes),
written here on Ray's *public* API (so on Nexus's through the shim). Only helpers that are pure test scaffolding
are here; every other name of those modules is a stand-in that puts the test out of scope
(:mod:`ray_suite_internals`). Behaviour follows Ray's documented helpers; the code is this harness's own.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any, Callable

import ray

__all__ = [
    "Semaphore",
    "SignalActor",
    "client_test_enabled",
    "create_remote_signal_actor",
    "kill_actor_and_wait_for_failure",
    "run_string_as_driver",
    "run_string_as_driver_nonblocking",
    "wait_for_condition",
    "wait_for_pid_to_exit",
]


def client_test_enabled() -> bool:
    """Ray Client mode is never on here."""
    return False


def wait_for_condition(
    condition_predictor: Callable[..., Any],
    timeout: float = 10,
    retry_interval_ms: float = 100,
    raise_exceptions: bool = False,
    **kwargs: Any,
) -> None:
    """Poll ``condition_predictor(**kwargs)`` until it is true; RuntimeError after ``timeout`` seconds."""
    start = time.monotonic()
    last_error: Exception | None = None
    while time.monotonic() - start <= timeout:
        try:
            if condition_predictor(**kwargs):
                return
        except Exception as e:
            if raise_exceptions:
                raise
            last_error = e
        time.sleep(retry_interval_ms / 1000.0)
    message = "The condition wasn't met before the timeout expired."
    if last_error is not None:
        message += f" Last exception: {last_error!r}"
    raise RuntimeError(message)


def _pid_alive(pid: int) -> bool:
    try:
        import psutil

        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE
    except Exception:
        return False


def wait_for_pid_to_exit(pid: int, timeout: float = 20) -> None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if not _pid_alive(pid):
            return
        time.sleep(0.1)
    raise TimeoutError(f"Timed out while waiting for process {pid} to exit.")


@ray.remote(num_cpus=0)
class SignalActor:
    """An async actor: ``wait.remote()`` returns once ``send.remote()`` was called."""

    def __init__(self) -> None:
        self.ready_event = asyncio.Event()
        self.num_waiters = 0

    async def send(self, clear: bool = False) -> None:
        self.ready_event.set()
        if clear:
            self.ready_event.clear()

    async def wait(self, should_wait: bool = True) -> None:
        if should_wait:
            self.num_waiters += 1
            await self.ready_event.wait()
            self.num_waiters -= 1

    async def cur_num_waiters(self) -> int:
        return self.num_waiters


@ray.remote(num_cpus=0)
class Semaphore:
    def __init__(self, value: int = 1) -> None:
        self._sema = asyncio.Semaphore(value=value)

    async def acquire(self) -> None:
        await self._sema.acquire()

    async def release(self) -> None:
        self._sema.release()

    async def locked(self) -> bool:
        return self._sema.locked()


def create_remote_signal_actor(ray_module: Any = None) -> Any:
    """The SignalActor class (Ray's helper builds it with the given ``ray`` module; here it is Nexus's)."""
    return SignalActor


def kill_actor_and_wait_for_failure(actor: Any, timeout: float = 10, retry_interval_ms: float = 100) -> None:
    """``ray.kill(actor)``, then wait until a call on it fails with RayActorError."""
    ray.kill(actor)
    start = time.monotonic()
    while time.monotonic() - start <= timeout:
        try:
            ray.get(actor.__ray_ready__.remote(), timeout=timeout)
        except ray.exceptions.RayActorError:
            return
        except Exception:
            pass
        time.sleep(retry_interval_ms / 1000.0)
    raise RuntimeError("It took too much time to kill an actor")


def run_string_as_driver(driver_script: str, env: dict[str, str] | None = None, encode: str = "utf-8") -> str:
    """Run ``driver_script`` in a new Python process (this one's interpreter and environment); its output."""
    proc = subprocess.Popen([sys.executable, "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = proc.communicate(driver_script.encode(encode))[0]
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, proc.args, out, None)
    return out.decode(encode)


def run_string_as_driver_nonblocking(driver_script: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env if env is not None else dict(os.environ),
    )
    assert proc.stdin is not None
    proc.stdin.write(driver_script.encode("ascii"))
    proc.stdin.close()
    return proc
