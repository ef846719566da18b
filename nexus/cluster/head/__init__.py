"""The cluster-wide part: the tables (objects, tasks, actors, workers), placement, named actors, object ownership.

:mod:`.runtime` is the driver's runtime (the head and this host's node agent in
one process); :mod:`.tasks`, :mod:`.actors` and :mod:`.objects` apply what
workers and callers say to the state of :mod:`..state`; :mod:`.lock` is the
lock that guards it, whose commands run once it is released.
"""
