"""What the processes of a cluster say to each other: the messages, their codec, and the pump that receives them.

Driver -> worker: ``def`` (a function or class, once per worker), ``task``,
``create_actor``, ``call``, ``objects`` (answer to a request), ``cancel``,
``revoke``, ``exit``, ``batch`` (several of these coalesced). Worker ->
driver: ``hello``, ``done``, ``done_many``, ``blocked``, ``revoked``,
``submit``, ``submit_call``, ``create_actor``, ``actor_ready``, ``get``,
``wait``, ``put``, ``refs``, ``alloc``, ``free``, ``copied``, ``control``.
"""

from .codec import pack, pack_frames, unpack, unpack_frames
from .pump import SPIN_SECONDS, LogLimiter, Pump

__all__ = ["SPIN_SECONDS", "LogLimiter", "Pump", "pack", "pack_frames", "unpack", "unpack_frames"]
