"""A cluster started with observe=False records nothing and says so."""

from __future__ import annotations

import pytest

import nexus


def test_observation_can_be_off():
    nexus.init(num_cpus=1, observe=False)
    try:
        with pytest.raises(RuntimeError, match="observe=False"):
            nexus.timeline()
    finally:
        nexus.shutdown()
