"""A local cluster per transport, shared by the tests of a module: the whole API runs over both.

With ``NEXUS_TEST_ATTACH="ADDRESS KEY_FILE"`` the tests run instead through a driver attached to that head
(``nexus.init(address=..., key=...)``): the multi-host tests run the cluster API this way from a simulated host,
with the work placed on the nodes of others. Tests of what only a driver in this process has are marked
``local_only``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import nexus

TRANSPORTS = ["shm", "zmq"]
ATTACH = os.environ.get("NEXUS_TEST_ATTACH", "")

local_only = pytest.mark.skipif(bool(ATTACH), reason="about the driver in this process (NEXUS_TEST_ATTACH: attached to a head)")


@pytest.fixture(scope="module", params=["attached"] if ATTACH else TRANSPORTS)
def cluster(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "attached":
        address, key = ATTACH.split(" ", 1)
        nexus.init(address=address, key=key)
    else:
        nexus.init(num_cpus=2, transport=request.param)
    try:
        yield request.param
    finally:
        nexus.shutdown()


def shm_entries() -> set[str]:
    """Segments of the clusters this test process drives (others may run beside the tests)."""
    return {name for name in os.listdir("/dev/shm") if name.startswith(f"nexus-{os.getpid()}-")}


@pytest.fixture
def one_cpu() -> Iterator[None]:
    """A cluster of one CPU, for this test alone."""
    nexus.init(num_cpus=1)
    try:
        yield
    finally:
        nexus.shutdown()
