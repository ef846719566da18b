"""What a cluster has and what its tasks and actors hold: needs from options, whether they fit, holding them."""

from __future__ import annotations

import pytest

from nexus.cluster.state.resources import Resources


def cluster(cpus: float = 4, **custom: float) -> Resources:
    return Resources(cpus, custom)


@pytest.mark.parametrize("options", [{}, {"num_cpus": 1}, {"num_cpus": None}, {"num_gpus": 0}, {"max_retries": 2}])
def test_a_plain_one_cpu_task_has_no_needs_of_its_own(options: dict) -> None:
    assert cluster().needs_of(options, "f", default_cpu=1.0) is None


def test_needs_are_cpus_gpus_and_custom_resources() -> None:
    r = cluster(4, GPU=2, disk=1)
    assert r.needs_of({"num_cpus": 2}, "f", 1.0) == {"CPU": 2.0}
    assert r.needs_of({"num_gpus": 1}, "f", 1.0) == {"CPU": 1.0, "GPU": 1.0}
    assert r.needs_of({"resources": {"disk": 0.5}, "num_cpus": 0}, "f", 1.0) == {"CPU": 0.0, "disk": 0.5}


def test_an_actor_needs_its_default_cpu_unless_told_otherwise() -> None:
    r = cluster(4)
    assert r.needs_of({"max_restarts": 1}, "A", default_cpu=0.0) is None
    assert r.needs_of({"num_cpus": 1}, "A", default_cpu=0.0) == {"CPU": 1.0}


def test_needing_more_cpus_than_the_cluster_has_says_what_it_has() -> None:
    with pytest.raises(ValueError, match=r"f can never run: it needs 8 CPU and the cluster has 4 \(nexus\.init\(num_cpus="):
        cluster(4).needs_of({"num_cpus": 8}, "f", 1.0)


def test_needing_a_resource_the_cluster_lacks_says_it_has_none() -> None:
    with pytest.raises(ValueError, match="it needs 1 GPU and the cluster has 0"):
        cluster(4).needs_of({"num_gpus": 1}, "train", 1.0)


def test_a_negative_amount_is_refused() -> None:
    with pytest.raises(ValueError, match=r"f asks for -1\.0 disk: resource amounts cannot be negative"):
        cluster(4, disk=1).needs_of({"resources": {"disk": -1}}, "f", 1.0)


def test_needs_fit_while_the_cluster_has_them_free() -> None:
    r = cluster(4, GPU=1)
    needs = {"CPU": 2.0, "GPU": 1.0}
    assert r.fits(needs, free_cpus=2.0)
    assert not r.fits(needs, free_cpus=1.5)
    r.hold({"GPU": 1.0})
    assert not r.fits(needs, free_cpus=4.0)
    assert r.short_of(needs, free_cpus=1.0) == ["CPU", "GPU"]
    r.release({"GPU": 1.0})
    assert r.fits(needs, free_cpus=4.0) and r.short_of(needs, free_cpus=4.0) == []


def test_holding_without_cpu_leaves_the_cpu_count_to_the_workers() -> None:
    r = cluster(4, GPU=2)
    r.hold({"CPU": 2.0, "GPU": 1.0}, cpu=False)
    assert r.used == {"CPU": 0.0, "GPU": 1.0}
    r.hold({"CPU": 2.0, "GPU": 1.0})
    assert r.used == {"CPU": 2.0, "GPU": 2.0}
    r.release({"CPU": 2.0, "GPU": 1.0})
    r.release({"CPU": 2.0, "GPU": 1.0}, cpu=False)
    assert r.used == {"CPU": 0.0, "GPU": 0.0}


def test_asking_for_none_of_a_resource_the_cluster_lacks_is_harmless() -> None:
    r = cluster(4)
    needs = r.needs_of({"resources": {"TPU": 0}}, "f", 1.0)
    assert needs is not None
    assert r.fits(needs, free_cpus=4.0)
    assert r.short_of(needs, free_cpus=4.0) == []
    r.hold(needs)
    r.release(needs)
