"""One host of a cluster: its worker processes, their channels, the receiver, the arena and its spill folder.

On one host the driver's process holds the head and this node agent in
process (no hop between them): :mod:`.processes` starts, watches and reaps
the workers; :mod:`.outbox` sends to them without ever waiting under the
head's lock; :mod:`.receiver` receives from all of them on one thread (or on
the thread of a caller waiting in ``get``); :mod:`.store` keeps the arena,
its allocator, prefaulting, spilling and read mappings; :mod:`.sampler`
samples each process's CPU and memory.
"""
