"""Shared fixtures: the same behaviour tests run on every dispatcher (as Pykka's RUNTIMES)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nexus.core import ActorSystem, AsyncioDispatcher, DeterministicDispatcher, ManualClock, SystemConfig


def wait_until(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.002) -> Any:
    """Poll ``condition`` until it is truthy; fail the test after ``timeout`` seconds (a hang guard, not a timing assertion).

    The default is generous: it costs nothing when the condition comes true, and a busy CI machine is slow.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {condition}")
        time.sleep(interval)


class Runtime:
    """A system plus the way to let it make progress: threads run by themselves, the deterministic one on request."""

    def __init__(self, name: str, system: ActorSystem, dispatcher: Any = None, clock: ManualClock | None = None) -> None:
        self.name = name
        self.system = system
        self.dispatcher = dispatcher
        self.clock = clock

    @property
    def deterministic(self) -> bool:
        return isinstance(self.dispatcher, DeterministicDispatcher)

    def settle(self) -> None:
        if self.deterministic:
            self.dispatcher.run_until_idle()

    def wait_until(self, condition: Callable[[], Any], timeout: float = 20.0) -> Any:
        if self.deterministic:
            self.dispatcher.run_until_idle()
            value = condition()
            assert value, f"condition not met once the deterministic dispatcher was idle: {condition}"
            return value
        return wait_until(condition, timeout)


def _threads(config: SystemConfig | None = None) -> Runtime:
    return Runtime("threads", ActorSystem("test", config))


def _deterministic(config: SystemConfig | None = None) -> Runtime:
    dispatcher, clock = DeterministicDispatcher(), ManualClock()
    return Runtime("deterministic", ActorSystem("test", config, dispatcher=dispatcher, clock=clock), dispatcher, clock)


def _asyncio(config: SystemConfig | None = None) -> Runtime:
    dispatcher = AsyncioDispatcher()
    system = ActorSystem("test", config, dispatcher=dispatcher)
    system._async_dispatcher = dispatcher  # shut down with the system
    return Runtime("asyncio", system, dispatcher)


RUNTIMES: dict[str, Callable[..., Runtime]] = {"threads": _threads, "deterministic": _deterministic, "asyncio": _asyncio}


@pytest.fixture(params=sorted(RUNTIMES))
def runtime(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    rt = RUNTIMES[request.param]()
    yield rt
    assert rt.system.shutdown(timeout=10), "actors left running at shutdown"


@pytest.fixture(params=["deterministic", "threads"])
def sync_runtime(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    """Runtimes where blocking inside an actor (expect) is allowed."""
    rt = RUNTIMES[request.param]()
    yield rt
    assert rt.system.shutdown(timeout=10), "actors left running at shutdown"


@pytest.fixture
def system() -> Iterator[ActorSystem]:
    """A system on the default thread-pool dispatcher."""
    s = ActorSystem("test")
    yield s
    assert s.shutdown(timeout=10), "actors left running at shutdown"


@pytest.fixture
def det() -> Iterator[Runtime]:
    """A deterministic system with a manual clock."""
    rt = _deterministic()
    yield rt
    rt.system.shutdown()


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> Iterator[None]:
    before = {t.ident for t in threading.enumerate()}
    yield

    def leaked() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("nexus")]

    deadline = time.monotonic() + 30  # a hang guard: a helper thread may still be starting a worker process
    while leaked() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not leaked(), f"threads left behind: {leaked()}"


@pytest.fixture
def etcd(tmp_path: Any) -> Iterator[Any]:
    """A real etcd server of the test's own (see tests/etcd_server.py), stopped after it."""
    from tests.etcd_server import Etcd

    server = Etcd(tmp_path / "etcd")
    server.start()
    try:
        yield server
    finally:
        server.stop()
