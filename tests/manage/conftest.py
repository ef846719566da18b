"""A real cluster for the management ports' tests: ``nexus start --head`` and a node that joins it, and this
process attached to it as a driver (one cluster per test module)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import nexus
from tests.remote.test_membership import Home


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    home = Home(tmp_path_factory.mktemp("manage") / "nexus-home")
    home.start_head()
    home.start_node("--num-cpus", "1")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("NEXUS_HOME", str(home.path))  # (the attached driver finds the head started here)
            nexus.init(address="auto")
            try:
                yield home
            finally:
                nexus.shutdown()
    finally:
        left = home.stop_all()
        assert not left, f"daemons left running: {left}"
