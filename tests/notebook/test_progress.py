"""progress(refs) per function: the model with plain inputs, how refs are named, then the live view on a real cluster."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from types import SimpleNamespace

import pytest

import nexus
from nexus.notebook.progress import DONE_BEFORE, OTHER, ProgressModel, format_elapsed, format_rate, origins, progress

from ..conftest import wait_until


def _rows(model):
    return {f.name: (f.done, f.failed, f.running, f.waiting) for f in model.functions()}


def test_the_model_counts_each_function_and_the_total():
    model = ProgressModel([DONE_BEFORE, "f", "f", "f", "f", "g", "g"], start=100.0)
    model.update(100.0, finished={0: False})  # what was there when the view was made
    assert model.summary() == "1 of 7 done · elapsed 0.0 s"
    model.update(100.5, running=[1, 2, 5])
    assert [f.name for f in model.functions()] == ["f", "g", DONE_BEFORE], "in the order of their refs; done before last"
    assert _rows(model) == {"f": (0, 0, 2, 2), "g": (0, 0, 1, 1), DONE_BEFORE: (1, 0, 0, 0)}
    assert model.summary() == "1 of 7 done · 3 running · elapsed 0.5 s", "no rate before a ref finished since"
    assert model.rate() is None and model.eta() is None
    model.update(101.0, finished={1: False, 5: True}, running=[2, 3, 5, 6])  # 5 finished: reported running, it stays done
    assert _rows(model) == {"f": (1, 0, 2, 1), "g": (1, 1, 1, 0), DONE_BEFORE: (1, 0, 0, 0)}
    assert model.rate() == pytest.approx(2.0) and model.eta() == pytest.approx(2.0)
    assert model.summary() == "3 of 7 done, 1 failed · 3 running · elapsed 1.0 s · 2.0/s · ETA 2.0 s"
    total = model.total()
    assert (total.total, total.done, total.failed, total.running, total.waiting) == (7, 3, 1, 3, 1)
    model.update(101.5)  # no look at what runs: as it was
    assert _rows(model)["f"] == (1, 0, 2, 1)
    model.update(102.0, finished={2: False, 3: False, 4: False, 6: False}, running=[])
    assert model.finished and model.summary() == "7 of 7 done, 1 failed · done in 2.0 s"
    model.update(109.0)
    assert model.elapsed == pytest.approx(2.0), "the time stops when the last one is done"


def test_a_ref_that_stops_running_without_finishing_waits_again():
    model = ProgressModel(["f", "f"], start=0.0)
    model.update(0.0, running=[0])
    model.update(0.5, running=[1])  # (an actor restarting: its call is sent again later)
    assert _rows(model) == {"f": (0, 0, 1, 1)}


def test_the_label_says_something_before_the_first_result():
    model = ProgressModel(["f"] * 100, start=10.0)
    model.update(10.1, running=[0, 1])
    assert model.summary() == "0 of 100 done · 2 running · elapsed 0.1 s"
    assert "0 of 100 done" in model.to_html()


def test_all_done_before_the_view_says_so():
    model = ProgressModel([DONE_BEFORE] * 3, start=0.0)
    model.update(0.0, finished={0: False, 1: False, 2: True})
    assert model.finished and model.summary() == "3 of 3 done, 1 failed · all done before this view was made"


def test_the_html_has_a_row_per_function_with_its_counts_in_data_attributes():
    model = ProgressModel(["<lambda>", "<lambda>", "Counter.add", OTHER], start=0.0)
    model.update(1.0, finished={0: True}, running=[2])
    page = model.to_html()
    assert page.startswith('<div class="nexus-progress"') and page.count('class="nexus-progress-row"') == 3
    assert 'data-function="&lt;lambda&gt;" data-total="2" data-done="1" data-failed="1" data-running="0" data-waiting="1"' in page
    assert 'data-function="Counter.add" data-total="1" data-done="0" data-failed="0" data-running="1" data-waiting="0"' in page
    assert 'data-function="other"' in page and "<lambda>" not in page, "names are escaped"
    assert "1 of 2 done, 1 failed, 1 waiting" in page
    for colour in ("var(--jp-error-color1, #d32f2f)", "var(--jp-brand-color1, #1976d2)", "var(--jp-layout-color3, #ddd)"):
        assert colour in page
    assert "var(--jp-success-color1, #4caf50)" not in page, "no done segment where none is done without failing"
    assert "#fff" not in page and "#000" not in page and "white;" not in page


@pytest.mark.parametrize(("seconds", "shown"), [(0.06, "0.1 s"), (3.24, "3.2 s"), (125, "2 min 05 s"), (3725, "1 h 02 min")])
def test_elapsed_times(seconds, shown):
    assert format_elapsed(seconds) == shown


@pytest.mark.parametrize(("rate", "shown"), [(156.4, "156/s"), (15.64, "15.6/s"), (0.025, "1.5/min"), (0.0001, "0.006/min")])
def test_rates(rate, shown):
    assert format_rate(rate) == shown


def _task(task_id, name, *result_ids):
    return SimpleNamespace(task_id=task_id, name=name, result_ids=list(result_ids))


def _call(call_id, method, *result_ids):
    return SimpleNamespace(call_id=call_id, method=method, result_ids=list(result_ids))


def test_refs_are_named_by_the_pending_task_or_call_that_makes_them():
    done, pending = SimpleNamespace(blob=object()), SimpleNamespace(blob=None)
    actor = SimpleNamespace(cls_name="Counter", queue=deque([_call(20, "add", 200)]), inflight={21: _call(21, "get", 210)})
    rt = SimpleNamespace(
        lock=threading.Lock(),
        tasks=SimpleNamespace(
            queue=deque([_task(1, "load", 100)]), waiting={2: _task(2, "parse", 101)}, running={3: _task(3, "load", 102, 103)}
        ),
        actors={7: actor},
        objects=SimpleNamespace(entries={300: done, 301: pending}),
    )
    refs = [SimpleNamespace(id=oid) for oid in (100, 101, 103, 200, 210, 300, 301, 302)]
    names, ids = origins(rt, refs)
    assert names == ["load", "parse", "load", "Counter.add", "Counter.get", DONE_BEFORE, OTHER, DONE_BEFORE]
    assert ids == {0: 1, 1: 2, 2: 3, 3: 20, 4: 21}, "the task or call ids, to find them among what runs"


# -- on a real cluster ------------------------------------------------------------------------------


@pytest.fixture()
def cluster():
    nexus.init(num_cpus=2)
    try:
        yield
    finally:
        nexus.shutdown()


def _hold(flag):
    """Wait for the test to create ``flag`` (a file: no get, so the worker is running the task, not blocked in get)."""
    deadline = time.monotonic() + 120
    while not os.path.exists(flag) and time.monotonic() < deadline:
        time.sleep(0.01)


@nexus.remote
def held(flag, x):
    _hold(flag)
    return x


@nexus.remote
def fails(flag, x):
    _hold(flag)
    raise ValueError(f"no {x}")


@nexus.remote
class Holder:
    def held(self, flag, x):
        _hold(flag)
        return x


def _total(view):
    t = view.model.total()
    return t.done, t.failed, t.running, t.waiting


def test_progress_counts_each_function_to_done_and_failed(cluster, tmp_path):
    from nexus.notebook.widgets import _pumps

    flag = str(tmp_path / "go")
    holder = Holder.remote()
    put = nexus.put("already here")
    refs = [held.remote(flag, i) for i in range(5)] + [fails.remote(flag, i) for i in range(3)]
    refs += [holder.held.remote(flag, i) for i in range(2)] + [put]
    view = progress(refs)
    names = [f.name for f in view.model.functions()]
    assert names == ["held", "fails", "Holder.held", DONE_BEFORE], "named when the view is made, none finished before"
    assert view.model.total().done == 1, "the put was there already"
    open(flag, "w").close()
    wait_until(lambda: view.model.finished, timeout=120)
    assert _rows(view.model) == {"held": (5, 0, 0, 0), "fails": (3, 3, 0, 0), "Holder.held": (2, 0, 0, 0), DONE_BEFORE: (1, 0, 0, 0)}
    assert all(view not in p.views for p in _pumps.values()), "a view that is done leaves the pump"
    wait_until(lambda: view.html.value == view.model.to_html(), timeout=30)
    assert "done in" in view.html.value and 'data-function="fails"' in view.html.value
    assert view._repr_mimebundle_()["text/html"] == view.model.to_html(), "a saved notebook shows the last state"
    assert nexus.get(refs[:5], timeout=30) == list(range(5))


def test_progress_shows_what_runs_and_what_waits(cluster, tmp_path):
    flag = str(tmp_path / "go")
    refs = [held.remote(flag, i) for i in range(6)]
    view = progress(refs)
    # Two workers: at most two run, the others wait (queued at the head, or sent ahead to a worker: not running)
    wait_until(lambda: _total(view)[2] >= 1 and _total(view)[3] >= 1, timeout=120)
    done, failed, running, waiting = _total(view)
    assert (done, failed) == (0, 0) and running + waiting == 6 and running <= 2
    wait_until(lambda: 'data-running="0"' not in view.html.value, timeout=30)
    open(flag, "w").close()
    wait_until(lambda: view.model.finished, timeout=120)
    assert _total(view) == (6, 0, 0, 0)
    wait_until(lambda: "6 of 6 done · done in" in view.html.value, timeout=30)
