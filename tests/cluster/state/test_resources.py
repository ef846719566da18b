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


# -- several nodes: a pool each --------------------------------------------------------------


def three_nodes() -> Resources:
    """The head's host (node 1: 2 CPUs), node 2 (4 CPUs, 1 GPU, zone a), node 3 (8 CPUs, zone b)."""
    r = Resources(2, node=1)
    r.add_node(2, {"CPU": 4, "GPU": 1}, {"zone": "a"})
    r.add_node(3, {"CPU": 8}, {"zone": "b"})
    return r


def test_the_clusters_sums_follow_the_nodes_as_they_join_and_go() -> None:
    r = three_nodes()
    assert r.multi and r.total == {"CPU": 14.0, "GPU": 1.0}
    r.hold({"CPU": 1.0, "GPU": 1.0}, node=2)
    assert r.used == {"CPU": 1.0, "GPU": 1.0} and r.pools[2].used == {"CPU": 1.0, "GPU": 1.0}
    r.remove_node(2)
    assert r.total == {"CPU": 10.0, "GPU": 0.0} and r.used == {"CPU": 0.0, "GPU": 0.0}
    r.release({"CPU": 1.0, "GPU": 1.0}, node=2)  # (an actor of the dead node dies later: nothing to give back)
    assert r.used == {"CPU": 0.0, "GPU": 0.0}
    r.remove_node(1)
    assert 1 in r.pools, "the head's own host stays"


def test_needs_must_fit_one_node_not_the_sum_of_them() -> None:
    r = three_nodes()
    assert r.needs_of({"num_cpus": 8}, "f", 1.0) == {"CPU": 8.0}
    assert r.nodes_for({"CPU": 8.0}) == [3]
    never = r"f can never run: it needs 10 CPU on one node and no node has that \(the nodes have 2 CPU; 4 CPU, 1 GPU; 8 CPU"
    with pytest.raises(ValueError, match=never):
        r.needs_of({"num_cpus": 10}, "f", 1.0)  # 14 in all, but never 10 on one
    with pytest.raises(ValueError, match="it needs 1 CPU, 1 GPU on one node"):
        r.needs_of({"num_gpus": 1}, "f", 1.0, where=lambda labels: labels.get("zone") == "b")


def test_a_selector_no_nodes_labels_match_can_never_run() -> None:
    r = three_nodes()
    with pytest.raises(ValueError, match="no node has the labels it asks for"):
        r.needs_of({"label_selector": {"zone": "c"}}, "f", 1.0, where=lambda labels: labels.get("zone") == "c")
    assert r.needs_of({"label_selector": {"zone": "a"}}, "f", 1.0, where=lambda labels: labels.get("zone") == "a") is None


def test_fitting_a_node_counts_what_is_held_there_only() -> None:
    r = three_nodes()
    r.hold({"GPU": 1.0}, node=2)
    assert not r.fits({"CPU": 1.0, "GPU": 1.0}, 4.0, node=2)
    assert r.short_of({"CPU": 5.0, "GPU": 1.0}, 4.0, node=2) == ["CPU", "GPU"]
    assert r.fits({"CPU": 8.0}, 8.0, node=3) and not r.fits({"CPU": 1.0}, 1.0, node=9)
    assert r.free(2, 3.0) == {"CPU": 3.0, "GPU": 0.0}
