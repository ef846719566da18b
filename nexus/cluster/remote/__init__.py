"""Links between processes of different hosts: a head, its node agents and their drivers, over ZeroMQ with CURVE.

:mod:`.keys` (the cluster's key files and allow-list), :mod:`.wire` (the
control frames, JSON), :mod:`.head` (the head's end: membership),
:mod:`.agent` (a node's end: join, heartbeats, fencing), :mod:`.daemon` (the
processes ``nexus start`` leaves running).
"""
