"""pytest plugin for running Ray's own test files against Nexus (loaded by ``run.py`` with ``-p conftest``).

It gives:

* Ray's common fixtures (``python/ray/tests/conftest.py`` names), starting Nexus through the shim's
  ``ray.init``. A fixture's ``request.param`` dict (``@pytest.mark.parametrize(..., indirect=True)``) is merged
  into the init arguments; the ones Nexus's ``init`` takes (:data:`INIT_KEYS`) are passed on, the rest
  (Ray's ``_system_config`` keys, ``_lru_evict``, ``include_dashboard`` ...) are dropped and noted in the test's
  record. Ray's fixtures also pass ``object_store_memory=150 MiB``, a ``_system_config`` and
  ``dashboard_port=None``: not these, Nexus's defaults stand (only a test's own param sets a store size).
* Ray's multi-node / GCS / dashboard / Redis / Ray Client fixtures (:data:`scope.OUT_OF_SCOPE_FIXTURES`): each raises
  ``OutOfScopeError`` at setup, so its tests count as out of scope.
* ``async def`` tests (``@pytest.mark.asyncio``, as pytest-asyncio would run them, which is not installed) and
  the ``event_loop`` fixture.
* Hygiene: after a test that used no module-shared fixture, a cluster it left running is shut down (so one
  failure does not fail the next test's ``ray.init``).
* A record of every test (outcome of each phase, error, fixtures, Ray internals it touched) as JSON lines in
  ``$RAY_SUITE_RESULTS``, which ``run.py`` reads and classifies.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import time
from contextlib import contextmanager
from typing import Any, Iterator

import pytest
import ray  # (the shim: scripts/ray_suite/shim is first on PYTHONPATH)

try:
    import ray_suite_internals as _internals
except ImportError:  # (strict mode runs without the harness folder)
    _internals = None

# numpy 2 removed np.alltrue, which one of Ray's tests still calls; put the old name back (an environment fix).
try:
    import numpy as _np

    if not hasattr(_np, "alltrue"):
        _np.alltrue = _np.all
except Exception:
    pass

INIT_KEYS = {"num_cpus", "num_gpus", "resources", "namespace", "object_store_memory", "local_mode", "ignore_reinit_error"}
DEFAULT_INIT = {"num_cpus": 1, "namespace": "default_test_namespace"}  # (Ray's fixture defaults that Nexus takes)

from scope import OUT_OF_SCOPE_FIXTURES  # noqa: E402  (name -> why: the list run.py documents)

_shared_alive = [0]


def _split_init_kwargs(request: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    init = dict(DEFAULT_INIT)
    dropped = []
    for key, value in kwargs.items():
        if key in INIT_KEYS:
            init[key] = value
        else:
            dropped.append(key)
    node = getattr(request, "node", None)
    if node is not None and dropped:
        node.user_properties.append(("dropped_init_kwargs", sorted(dropped)))
    return init


@contextmanager
def _ray_start(request: Any, **kwargs: Any) -> Iterator[Any]:
    param = getattr(request, "param", {})
    merged = {**kwargs, **dict(param)}
    info = ray.init(**_split_init_kwargs(request, merged))
    try:
        yield info
    finally:
        ray.shutdown()


@pytest.fixture
def shutdown_only() -> Iterator[None]:
    yield None
    ray.shutdown()


@pytest.fixture(scope="class")
def class_ray_instance() -> Iterator[Any]:
    yield ray.init()
    ray.shutdown()


@pytest.fixture
def ray_start_regular(request: Any) -> Iterator[Any]:
    with _ray_start(request) as info:
        yield info


@pytest.fixture(scope="module")
def ray_start_regular_shared(request: Any) -> Iterator[Any]:
    _shared_alive[0] += 1
    try:
        with _ray_start(request) as info:
            yield info
    finally:
        _shared_alive[0] -= 1


@pytest.fixture(scope="module", params=[{"local_mode": True}, {"local_mode": False}])
def ray_start_shared_local_modes(request: Any) -> Iterator[Any]:
    _shared_alive[0] += 1
    try:
        with _ray_start(request) as info:
            yield info
    finally:
        _shared_alive[0] -= 1


@pytest.fixture
def ray_start_no_cpu(request: Any) -> Iterator[Any]:
    with _ray_start(request, num_cpus=0) as info:
        yield info


@pytest.fixture
def ray_start_2_cpus(request: Any) -> Iterator[Any]:
    with _ray_start(request, num_cpus=2) as info:
        yield info


@pytest.fixture
def ray_start_10_cpus(request: Any) -> Iterator[Any]:
    with _ray_start(request, num_cpus=10) as info:
        yield info


@pytest.fixture
def ray_start_object_store_memory(request: Any) -> Iterator[Any]:
    store_size = request.param
    ray.init(num_cpus=1, object_store_memory=store_size)
    yield store_size
    ray.shutdown()


@pytest.fixture
def propagate_logs() -> Iterator[None]:
    logger = logging.getLogger("ray")
    before = logger.propagate
    logger.propagate = True
    yield
    logger.propagate = before


@pytest.fixture
def event_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _out_of_scope_fixture(name: str, why: str) -> Any:
    @pytest.fixture(name=name)
    def fixture(request: Any) -> None:
        if _internals is not None:
            _internals.touched(f"fixture {name}")
            raise _internals.OutOfScopeError(f"Ray internals needed: fixture {name} ({why})")
        raise RuntimeError(f"Ray internals needed: fixture {name} ({why})")

    return fixture


for _name, _why in OUT_OF_SCOPE_FIXTURES.items():
    globals()[f"_oos_{_name}"] = _out_of_scope_fixture(_name, _why)


@pytest.fixture(autouse=True)
def _ray_suite_hygiene() -> Iterator[None]:
    yield
    if _shared_alive[0] == 0:
        try:
            if ray.is_initialized():
                ray.shutdown()
        except Exception:
            pass


# -- async tests ------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: Any) -> Any:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    funcargs = pyfuncitem.funcargs
    args = {name: funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    loop = funcargs.get("event_loop")
    own = loop is None
    if own:
        loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(pyfuncitem.obj(**args))
    finally:
        asyncio.set_event_loop(None)
        if own:
            loop.close()
    return True


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "asyncio: an async test, run on an event loop by the ray_suite plugin")


# -- the record -------------------------------------------------------------------------

_out = None
_phases: dict[str, dict[str, Any]] = {}


def _write(record: dict[str, Any]) -> None:
    global _out
    path = os.environ.get("RAY_SUITE_RESULTS")
    if not path:
        return
    if _out is None:
        _out = open(path, "a", encoding="utf-8")
    _out.write(json.dumps(record) + "\n")
    _out.flush()


def _message(report: Any) -> str:
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple):  # (a skip: path, line, reason)
        return str(longrepr[2])
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return str(crash.message)
    return str(longrepr).strip().splitlines()[-1] if str(longrepr).strip() else ""


def pytest_collection_finish(session: Any) -> None:
    _write({"kind": "collected", "nodeids": [item.nodeid for item in session.items]})


def pytest_collectreport(report: Any) -> None:
    if report.failed:
        _write({"kind": "collect_error", "nodeid": report.nodeid, "message": _message(report), "text": report.longreprtext[-6000:]})


def pytest_runtest_logreport(report: Any) -> None:
    entry = _phases.setdefault(report.nodeid, {})
    entry[report.when] = {
        "outcome": report.outcome,
        "message": _message(report) if report.outcome != "passed" else "",
        "text": report.longreprtext[-6000:] if report.outcome == "failed" else "",
        "wasxfail": bool(getattr(report, "wasxfail", None) is not None and hasattr(report, "wasxfail")),
        "duration": round(report.duration, 3),
    }


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: Any, nextitem: Any) -> Any:
    if _internals is not None:
        _internals.start_recording()
    start = time.monotonic()
    yield
    touches = _internals.stop_recording() if _internals is not None else []
    _write(
        {
            "kind": "test",
            "nodeid": item.nodeid,
            "name": item.name,
            "function": getattr(item, "originalname", item.name),
            "fixtures": list(getattr(item, "fixturenames", [])),
            "phases": _phases.pop(item.nodeid, {}),
            "touched": touches,
            "props": [list(p) for p in item.user_properties],
            "seconds": round(time.monotonic() - start, 2),
        }
    )
