"""Chains of nested tasks on one CPU (Ray's ``f -> g -> h``): a worker blocked in a get runs the task it waits for
first, not the next outer task of the queue, so every chain finishes and none waits behind a stack of others."""

from __future__ import annotations

import sys

import pytest

import nexus


@nexus.remote
def outer(i: int) -> tuple[int, int]:
    return nexus.get(middle.remote(i))


@nexus.remote
def middle(i: int) -> tuple[int, int]:
    return nexus.get(inner.remote(i))


@nexus.remote
def inner(i: int) -> tuple[int, int]:
    frame, outers = sys._getframe(), 0
    while frame is not None:  # how many outer tasks this worker's thread holds under this one
        outers += frame.f_code.co_name == "outer"
        frame = frame.f_back
    return i, outers


# A known hang, about 1 run in 4 on this machine, at this commit and at the one before the task stream's work
# (eaa7382): seen stuck with 968 tasks queued at the head, one worker running an outer task with 3 tasks sent ahead
# to it and not counted blocked, another counted blocked with its CPU still held (cpu_held 1.0), and three idle
# surplus workers that are given nothing. To be fixed next (issue 22's last stop note says so); a hang fails by the
# get's timeout, not pytest's.
@pytest.mark.xfail(reason="known: nested chains on one CPU sometimes stall (tasks queued, workers idle)", strict=False)
def test_a_thousand_chains_on_one_cpu_finish_depth_first(one_cpu: None) -> None:
    results = nexus.get([outer.remote(i) for i in range(1000)], timeout=60)
    assert [i for i, _ in results] == list(range(1000))
    deepest = max(outers for _, outers in results)
    # (1 or 2 on an idle machine; more when the head's answers are late; every outer one stacked: 1,000)
    assert deepest <= 100, f"an inner task ran under {deepest} outer ones: the worker stacked unrelated tasks"
