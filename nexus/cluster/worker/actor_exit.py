"""An actor ending itself: ``nexus.actor.exit_actor()`` (Ray's ``ray.actor.exit_actor``), and the built-in
``__ray_terminate__`` call that does the same after the calls before it."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from typing import NoReturn

__all__ = ["exit_actor"]


def exit_actor() -> NoReturn:
    """End the actor this is called in, for good (it is not restarted): its ``__ray_shutdown__`` runs, the answers
    of its earlier calls go out, then its process exits; this call and the calls after it fail with
    ActorDiedError. TypeError outside an actor's method."""
    from ..session import current

    session = current()
    host = getattr(session, "actor", None) if session is not None and session.driver() is None else None
    if host is None:
        raise TypeError("exit_actor() ends the actor it is called in: call it in an actor's method, not in a task or a driver")
    label = f"{type(host.instance).__qualname__} {host.actor_id:x}"
    shutdown = getattr(host.instance, "__ray_shutdown__", None)
    if callable(shutdown) and not getattr(host, "shut_down", False):
        host.shut_down = True
        try:
            shutdown()
        except Exception as exc:  # (it ends all the same)
            print(f"nexus: {label}: __ray_shutdown__ raised {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    answers = getattr(session, "answers", None)
    if answers is not None and answers.held_lock.acquire(timeout=1.0):
        try:
            with contextlib.suppress(Exception):
                answers.flush_held()
        finally:
            answers.held_lock.release()
    with contextlib.suppress(Exception):  # (the process's exit handlers, as Ray's; what it printed goes out)
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(Exception):  # (the head ends it and stops this process; if it cannot, it exits here)
        session.control("kill", host.actor_id, True, f"actor {label} exited (exit_actor)")  # type: ignore[union-attr]
    os._exit(0)
