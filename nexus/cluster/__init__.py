"""Layer 3, distribution: the local cluster (driver, workers, placement) and the Transport contract.

The public face is in :mod:`nexus` (``init``, ``remote``, ``get``, ...),
implemented in :mod:`.api`; transports are plugins (``transports/``) found
through the ``nexus.transports`` entry-point group.
"""
