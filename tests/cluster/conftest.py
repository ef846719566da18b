"""A local cluster per transport, shared by the tests of a module: the whole API runs over both."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import nexus

TRANSPORTS = ["shm", "zmq"]


@pytest.fixture(scope="module", params=TRANSPORTS)
def cluster(request: pytest.FixtureRequest) -> Iterator[str]:
    nexus.init(num_cpus=2, transport=request.param)
    try:
        yield request.param
    finally:
        nexus.shutdown()


def shm_entries() -> set[str]:
    """Segments of the clusters this test process drives (others may run beside the tests)."""
    return {name for name in os.listdir("/dev/shm") if name.startswith(f"nexus-{os.getpid()}-")}
