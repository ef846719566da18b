"""The util tests run on the cluster tests' clusters: one per transport, shared by a module's tests."""

from tests.cluster.conftest import cluster  # noqa: F401  (the fixture itself)
