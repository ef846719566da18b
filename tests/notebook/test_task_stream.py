"""A task stream made while others are live shows each span once: what it read when it was made, and after."""

from __future__ import annotations

import pytest

import nexus
from nexus.notebook.widgets import _Look
from nexus.observe import hub

from ..conftest import wait_until


@nexus.remote
def _step(i):
    return i


@pytest.fixture()
def cluster():
    nexus.init(num_cpus=1)
    try:
        yield
    finally:
        nexus.shutdown()


def _finished():
    return sum(1 for e in hub().read(0)[0] if e.kind == "finished")


def _ids(view):
    return [s[2] for s in view.model.spans]  # (each span's key: one per task)


def test_a_task_stream_made_beside_a_live_one_shows_each_span_once(cluster):
    first = nexus.TaskStream()  # the views' pump now follows the hub
    h = hub()
    with h._flush_lock:  # hold the pump's next delivery until the second view has read the past
        nexus.get([_step.remote(i) for i in range(50)], timeout=30)
        wait_until(lambda: _finished() >= 50, timeout=30)
        second = nexus.TaskStream()
        assert len(_ids(second)) == 50
    h.flush()  # the pump delivers from its own cursor: the 50 spans the second view read already come again
    assert sorted(_ids(second)) == sorted(set(_ids(second))) and len(_ids(second)) == 50
    assert len(_ids(first)) == 50
    nexus.get([_step.remote(i) for i in range(10)], timeout=30)
    wait_until(lambda: _finished() >= 60, timeout=30)
    h.flush()
    assert len(_ids(second)) == len(set(_ids(second))) == 60, "later spans arrive once too"


def test_a_task_stream_that_joined_after_a_tick_catches_up_on_what_it_missed(cluster):
    h = hub()
    with h._flush_lock:  # no delivery but the one this test makes
        view = nexus.TaskStream()
        start = view._cursor
        nexus.get([_step.remote(i) for i in range(20)], timeout=30)
        wait_until(lambda: _finished() >= 20, timeout=30)
        past = h.entries(start)
        cursor = past.cursor
        # As if a tick had delivered the first ten events before the view joined the pump: it reads them itself.
        view._tick(_Look(past.events[10:]))
        assert len(_ids(view)) == len(set(_ids(view))) == 20
        assert view._cursor == cursor


def test_the_window_the_browser_picks_is_the_static_pictures_too(cluster):
    view = nexus.TaskStream(window=30)
    assert view.model.window == 30 and "last 30 s" in view.model.to_html() or "no tasks" in view.model.to_html()
    view.window = 5.0  # what the browser's window picker sets (a synced trait)
    assert view.model.window == 5.0
    with pytest.raises(ValueError, match="window is the seconds shown"):
        nexus.TaskStream(window=0)


def test_once_every_view_is_closed_the_hubs_thread_stops_and_a_new_view_starts_it_again(cluster):
    from nexus.notebook.widgets import _pumps

    stream, placement = nexus.TaskStream(), nexus.ClusterView()
    h = hub()
    assert h._thread is not None and h in _pumps
    stream.close()
    h.flush()
    assert h._thread is not None, "one view still open"
    placement.close()
    h.flush()  # (the pump's next tick finds no view: it leaves the hub)
    assert h not in _pumps and not h._sinks and h._thread is None
    again = nexus.TaskStream()
    nexus.get([_step.remote(i) for i in range(5)], timeout=30)
    wait_until(lambda: _finished() >= 5, timeout=30)
    h.flush()
    assert len(_ids(again)) == 5 and h._thread is not None
    again.close()
