"""A second local user, for tests of what another account on the host can and cannot do to a cluster.

The tests run as root (CI does); :func:`as_another_user` forks, drops to
``nobody`` (uid and gid 65534, no supplementary groups) and runs a function
there: a real process of another user, with the modules this one has
already imported (that user cannot start this interpreter, which lives under
/root). Without root the tests that need it are skipped.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest

NOBODY = 65534


def needs_root() -> None:
    if os.geteuid() != 0:
        if os.environ.get("NEXUS_REQUIRE_SECOND_USER"):  # set by .ci/run: there these tests must run
            pytest.fail("acting as a second local user needs root, and NEXUS_REQUIRE_SECOND_USER says these tests must run")
        pytest.skip("acting as a second local user needs root (CI runs the tests as root)")


def as_another_user(fn: Callable[..., Any], *args: Any, timeout: float = 60.0) -> Any:
    """``fn(*args)`` in a child process running as ``nobody``; its return value, or its exception re-raised here."""
    needs_root()
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork of a process with threads: the child only runs fn
        pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            outcome: tuple[str, Any] = ("ok", fn(*args))
        except BaseException as exc:
            outcome = ("error", exc)
        try:
            try:
                data = pickle.dumps(outcome)
            except Exception as exc:
                data = pickle.dumps(("error", RuntimeError(f"unpicklable outcome: {exc!r}")))
            view = memoryview(data)
            while view:
                view = view[os.write(write_end, view) :]
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_end], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                raise AssertionError(f"the other user's process did not finish within {timeout} s")
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "error":
        raise value
    return value
