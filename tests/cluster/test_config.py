"""The cluster's tunables: one frozen ClusterConfig, checked when it is made, read from the environment in one place."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import nexus
from nexus.cluster import session
from nexus.cluster.config import RAY_ONLY_KEYS, ClusterConfig


def test_the_environment_sets_its_tunables_and_init_overrides_win() -> None:
    config = ClusterConfig.from_environment({"hold_age": 0.01}, {"NEXUS_SCHED_BATCH": "0", "NEXUS_INLINE_MAX": "8192"})
    assert (config.sched_batch, config.inline_max, config.hold_age) == (False, 8192, 0.01)
    assert ClusterConfig.from_environment({"inline_max": 4096}, {"NEXUS_INLINE_MAX": "8192"}).inline_max == 4096
    assert ClusterConfig.from_environment(None, {}) == ClusterConfig()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"channel_bytes": 5000}, "channel_bytes must be a power of two >= 4096, not 5000"),
        ({"channel_bytes": 1024}, "channel_bytes must be a power of two"),
        ({"inline_max": 0}, "inline_max must be between 1 and a quarter of channel_bytes"),
        ({"inline_max": 4 << 20}, r"a quarter of channel_bytes \(2097152\), not 4194304"),
        ({"arena_chunk": 1000}, "arena_chunk must be a positive multiple of 4096 bytes, not 1000"),
        ({"prefault_step": 0}, "prefault_step must be a positive multiple of 4096"),
    ],
)
def test_a_tunable_out_of_its_range_says_which_and_why(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClusterConfig(**changes)


def test_rays_internal_tunables_are_ignored_with_one_warning_and_other_unknown_keys_refused() -> None:
    ray_keys = {"task_retry_delay_ms": 100, "inline_object_status_in_refs": True}
    with pytest.warns(RuntimeWarning) as warned:
        config = ClusterConfig.from_environment({**ray_keys, "prefetch": 2}, {})
    assert config == ClusterConfig(prefetch=2)
    assert len(warned) == 1
    assert "inline_object_status_in_refs, task_retry_delay_ms are Ray's internal tunables" in str(warned[0].message)
    with pytest.raises(ValueError, match=r"unknown _system_config key\(s\) prefech, task_retry_delay; the tunables"):
        ClusterConfig.from_environment({"prefech": 2, "task_retry_delay": 1, "task_retry_delay_ms": 1}, {})
    assert "task_retry_delay_ms" in RAY_ONLY_KEYS and not RAY_ONLY_KEYS & {f.name for f in dataclasses.fields(ClusterConfig)}


def test_a_bad_environment_value_says_what_it_should_be() -> None:
    with pytest.raises(ValueError, match="NEXUS_INLINE_MAX is a number of bytes, not 'lots'"):
        ClusterConfig.from_environment(None, {"NEXUS_INLINE_MAX": "lots"})


@nexus.remote
def stored_where(n: int) -> tuple[int, object]:
    """This worker's inline limit, and a value of ``n`` bytes it makes (inline or in the arena, by that limit)."""
    return session.current().config.inline_max, np.zeros(n, dtype=np.uint8)


def test_the_store_and_channel_tunables_reach_the_driver_and_every_worker() -> None:
    nexus.init(num_cpus=1, _system_config={"inline_max": 4096, "channel_bytes": 1 << 16, "arena_chunk": 1 << 20})
    try:
        runtime = session.current_driver("this test")
        assert runtime.transport.capacity == 1 << 16
        assert runtime.store.arena.chunk == 1 << 20
        # 8 KB goes to the arena with a 4 KiB limit (64 KiB by default): in the worker that made it, and in the driver
        made = stored_where.remote(8000)
        limit, value = nexus.get(made, timeout=30)
        assert limit == 4096 and value.nbytes == 8000
        assert runtime.objects.entries[made.id].region is not None
        ref = nexus.put(np.ones(8000, dtype=np.uint8))
        entry = runtime.objects.entries[ref.id]
        assert entry.region is not None
        small = nexus.put(np.ones(1000, dtype=np.uint8))
        assert runtime.objects.entries[small.id].region is None
        # a value larger than a channel still travels: through the arena
        assert nexus.get(stored_where.remote(200_000), timeout=30)[1].nbytes == 200_000
    finally:
        nexus.shutdown()
