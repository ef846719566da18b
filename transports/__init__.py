"""Transport plugins, found through the ``nexus.transports`` entry-point group.

Empty for now: the shared-memory ring and ZeroMQ transports arrive with the
local-cluster and multi-host issues.
"""
