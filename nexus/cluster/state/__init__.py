"""Pure state of a cluster: what the head and a node know, with no threads, sockets, files or processes.

Each module holds one kind of record and the rules for changing it:
:mod:`.workers` (a worker's state and bookkeeping), :mod:`.actors` (an
actor's lifecycle, its call queue, bounded mailbox and restarts),
:mod:`.tasks` (tasks and calls, the queue, fitting, prefetch and stealing),
:mod:`.resources` (what the cluster has and what is held), :mod:`.objects`
(refs, pins, containment, spill choice). The head applies changes under its
lock and carries out what they call for (sends, spills, process kills) after
releasing it; these modules only decide. Unit-tested without any process
(tests/cluster/state/).
"""
