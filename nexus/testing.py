"""Fakes for tests: time driven by hand and a dispatcher that runs turns on request.

Example::

    from nexus.testing import ManualClock, DeterministicDispatcher
    clock, dispatcher = ManualClock(), DeterministicDispatcher()
    system = ActorSystem("test", dispatcher=dispatcher, clock=clock)
    ref = system.spawn(MyActor)
    ref.tell("hello")
    dispatcher.run_until_idle()
    clock.advance(5.0)   # fire timeouts due in the next five seconds
"""

from .core.clock import ManualClock
from .core.deterministic import DeterministicDispatcher

__all__ = ["DeterministicDispatcher", "ManualClock"]
