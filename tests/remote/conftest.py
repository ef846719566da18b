"""The ``home`` fixture (a ``$NEXUS_HOME`` of the test's own, with a head and nodes started from it) for every module here."""

from tests.remote.test_membership import home  # noqa: F401  (the fixture)
