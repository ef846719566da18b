"""Ray's ``ray.actor`` names: an actor ending itself (:func:`exit_actor`), and the classes of actors as their
callers hold them (:class:`ActorClass`, :class:`ActorHandle`, :class:`ActorMethod`)."""

from .cluster.actor_handles import ActorClass, ActorHandle, ActorMethod
from .cluster.worker.actor_exit import exit_actor

__all__ = ["ActorClass", "ActorHandle", "ActorMethod", "exit_actor"]
