"""Transport plugins, found through the ``nexus.transports`` entry-point group.

* ``shm`` (:mod:`transports.shm`): shared-memory rings with eventfd wake-ups,
  the default between processes of one host.
* ``zmq`` (:mod:`transports.zmq`): ZeroMQ PAIR sockets over ipc or tcp.

A third-party transport registers a :class:`nexus.cluster.transport.Transport`
subclass under the same group in its own package metadata.
"""
