"""Stand-ins for Ray's internals, so that a Ray test file imports and only the tests that *use* internals drop out.

Ray's test files import internals at the top (``from ray._private.test_utils import SignalActor``,
``import ray.cluster_utils``, ``from ray._raylet import ObjectRefGenerator``). Were those imports to fail, every
test of the file would fail to collect, also the ones that never touch an internal. So this import hook
(installed by ``sitecustomize`` in every process the harness starts: pytest, Nexus's workers, drivers run
by a test) answers the modules named in :data:`INTERNAL_MODULES`:

* the test-utility modules (``ray._private.test_utils``, ``ray._common.test_utils``, the old ``ray.test_utils``,
  ``ray.tests.client_test_utils``) give the helpers of :mod:`ray_suite_testutils` (``wait_for_condition``,
  ``SignalActor``, ...: written here on Ray's public API, not copied), and a stand-in for every other name;
* every other internal module (``ray._private.*``, ``ray._raylet``, ``ray.worker``, ``ray.cluster_utils``,
  ``ray.util.state``, ``ray.experimental``, ``ray.runtime_env``, ``ray.util.client``, ...) is a module of stand-ins;
* ``ray.cloudpickle`` is the ``cloudpickle`` package (Ray vendors it; that is no behaviour of Ray's).

A stand-in (:class:`StandIn`) can be bound, passed, its attributes taken and called (each gives another
stand-in), but using its value (``bool``, comparison, iteration, indexing, ``isinstance``, ``await``, numbers)
raises :class:`OutOfScopeError`. Every import of such a module and every use of a stand-in *during a test*
is recorded (:func:`touched`): the harness's conftest reads that record and counts the test as out of scope,
whatever its outcome. Uses in other processes (a Nexus worker) are not recorded, but their
``OutOfScopeError`` reaches the test as the task's error, and its text marks the test.

``RAY_SUITE_STRICT=1`` turns all of this off: internals are then plain ``ImportError``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from typing import Any

__all__ = ["INTERNAL_MODULES", "OutOfScopeError", "StandIn", "install", "stand_in", "touched"]

# Module prefixes that are Ray internals (a module is internal when its name is one of these or below one).
INTERNAL_MODULES = (
    "ray._private",
    "ray._raylet",
    "ray._common",
    "ray._config",
    "ray.worker",
    "ray.state",
    "ray.experimental",
    "ray.cluster_utils",
    "ray.ray_constants",
    "ray.test_utils",
    "ray.tests",
    "ray.serialization",
    "ray.signature",
    "ray.services",
    "ray.runtime_env",
    "ray.dashboard",
    "ray.internal",
    "ray.autoscaler",
    "ray.job_config",
    "ray.util.state",
    "ray.util.client",
    "ray.util.metrics",
    "ray.cloudpickle",
)
# The modules whose names are test helpers: those in ray_suite_testutils are real, the rest stand-ins.
TEST_UTILITY_MODULES = (
    "ray._private.test_utils",
    "ray._common.test_utils",
    "ray.test_utils",
    "ray.tests.client_test_utils",
)

_touches: list[str] = []
_recording = False


class OutOfScopeError(Exception):
    """A test used one of Ray's internals (which this suite does not measure)."""


def start_recording() -> None:
    global _recording
    _touches.clear()
    _recording = True


def stop_recording() -> list[str]:
    global _recording
    _recording = False
    return list(_touches)


def touched(what: str) -> None:
    if _recording and what not in _touches:
        _touches.append(what)


def _refuse(what: str) -> OutOfScopeError:
    touched(what)
    return OutOfScopeError(f"Ray internals needed: {what}")


class StandIn:
    """What an internal name gives: see the module's docstring."""

    __slots__ = ("_ray_suite_name",)

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_ray_suite_name", name)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") or attr.startswith(("_pytest", "_fixture", "_ray_suite")):
            raise AttributeError(attr)
        name = f"{self._ray_suite_name}.{attr}"
        touched(name)
        return StandIn(name)

    def __setattr__(self, attr: str, value: Any) -> None:
        touched(f"{self._ray_suite_name}.{attr} (set)")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        touched(f"{self._ray_suite_name}()")
        return StandIn(f"{self._ray_suite_name}()")

    def __reduce__(self) -> Any:  # (pickled as itself: a stand-in passed to a task stays a stand-in there)
        return (StandIn, (self._ray_suite_name,))

    def __repr__(self) -> str:
        return f"<Ray internal {self._ray_suite_name}>"

    __str__ = __repr__

    def __hash__(self) -> int:
        return hash(self._ray_suite_name)

    def _use(self, *_: Any, **__: Any) -> Any:
        raise _refuse(self._ray_suite_name)

    __bool__ = __len__ = __iter__ = __next__ = __contains__ = __getitem__ = __setitem__ = __delitem__ = _use
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _use  # type: ignore[assignment]
    __int__ = __float__ = __index__ = __add__ = __radd__ = __sub__ = __mul__ = __truediv__ = _use
    __enter__ = __exit__ = __await__ = __aiter__ = __anext__ = __aenter__ = __aexit__ = _use
    __instancecheck__ = __subclasscheck__ = __mro_entries__ = __fspath__ = _use


def stand_in(name: str) -> StandIn:
    touched(name)
    return StandIn(name)


class _InternalModule(types.ModuleType):
    """A module of stand-ins (and, for a test-utility module, of the harness's helpers)."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        sub = f"{self.__name__}.{attr}"
        if sub in sys.modules:
            return sys.modules[sub]
        return stand_in(sub)

    def __setattr__(self, attr: str, value: Any) -> None:
        if not attr.startswith("__") and not isinstance(value, types.ModuleType):
            touched(f"{self.__name__}.{attr} (set)")
        super().__setattr__(attr, value)


class _Loader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        if spec.name == "ray.cloudpickle":
            return types.ModuleType(spec.name)
        return _InternalModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        name = module.__name__
        if name == "ray.cloudpickle":  # (a copy of the package's names: the package itself stays as it is)
            import cloudpickle

            module.__dict__.update({k: v for k, v in vars(cloudpickle).items() if not k.startswith("__")})
            return
        module.__path__ = []  # (a package: its submodules are internal too)
        if name in TEST_UTILITY_MODULES:
            import ray_suite_testutils

            for attr in ray_suite_testutils.__all__:
                types.ModuleType.__setattr__(module, attr, getattr(ray_suite_testutils, attr))
        elif not any(t.startswith(name + ".") for t in TEST_UTILITY_MODULES):  # (a helper's parent package: no)
            touched(f"import {name}")


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if any(fullname == p or fullname.startswith(p + ".") for p in INTERNAL_MODULES):
            return importlib.util.spec_from_loader(fullname, _Loader(), is_package=True)
        return None


_installed = False


def install() -> None:
    """Put the hook first on ``sys.meta_path`` (once), unless ``RAY_SUITE_STRICT=1``."""
    global _installed
    if _installed or os.environ.get("RAY_SUITE_STRICT") == "1":
        return
    sys.meta_path.insert(0, _Finder())
    _installed = True
    _setproctitle_stand_in()


def _setproctitle_stand_in() -> None:
    """Ray bundles ``setproctitle`` and its tests import it; when the package is not installed, a module with
    its two functions (``getproctitle`` reads /proc/self/cmdline; ``setproctitle`` does nothing)."""
    try:
        import setproctitle  # noqa: F401
    except ImportError:
        module = types.ModuleType("setproctitle")

        def getproctitle() -> str:
            try:
                with open("/proc/self/cmdline", "rb") as f:
                    return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                return ""

        module.getproctitle = getproctitle  # type: ignore[attr-defined]
        module.setproctitle = lambda title: None  # type: ignore[attr-defined]
        sys.modules["setproctitle"] = module
