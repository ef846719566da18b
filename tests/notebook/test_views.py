"""The views' logic without a browser: model state after a sequence of events; the magic; the kernel spec."""

from __future__ import annotations

import array
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nexus
from nexus.notebook.models import ClusterModel
from nexus.notebook.stream import COLUMNS, StreamModel, nice_ticks
from nexus.observe import ObservationEvent
from nexus.state import ActorState, WorkerState

ROOT = Path(__file__).resolve().parents[2]


def _event(kind, **data):
    return ObservationEvent(0, kind, 0, data)


def _spans(buffer):
    values = array.array("d", buffer)
    return [dict(zip(COLUMNS, values[i : i + len(COLUMNS)], strict=True)) for i in range(0, len(values), len(COLUMNS))]


def test_the_stream_model_keeps_spans_with_their_callers_and_sends_only_what_is_new():
    model = StreamModel(window=10)
    t0 = model.t0
    model.feed([_event("submitted", id=1, name="outer", parent=0, bytes=10), _event("submitted", id=2, name="inner", parent=1, bytes=20)])
    model.feed(  # (a callee finishes before its caller)
        [
            _event("finished", id=2, worker="worker-2", start=t0 + 2_000_000, end=t0 + 3_000_000, ok=True, bytes=5),
            _event("finished", id=1, worker="worker-1", start=t0 + 1_000_000, end=t0 + 4_000_000, ok=False, bytes=0),
        ],
        missed=3,
    )
    header, (buffer,) = model.batch()
    inner, outer = _spans(buffer)
    assert header["names"] == ["outer", "inner"] and header["names_from"] == 0 and header["missed"] == 3
    assert (inner["start"], inner["end"], inner["args"], inner["result"]) == (2.0, 3.0, -1, -1), "sizes: not recorded"
    assert inner["parent"] == outer["key"] != inner["key"] and outer["parent"] == -1, "the callee names its caller's key"
    assert outer["flags"] == 1 and inner["flags"] == 0, "a failure is flagged"
    assert [r[0] for r in header["rows"]] == ["worker-2", "worker-1"]
    header, (buffer,) = model.batch()
    assert buffer == b"" and header["names"] == [] and header["names_from"] == 2, "a second batch: nothing new"
    model.feed([_event("finished", id=3, worker="worker-1", start=t0 + 5_000_000, end=t0 + 6_000_000, ok=True)])
    header, (buffer,) = model.batch()
    assert len(_spans(buffer)) == 1 and header["names"] == ["task 3"], "a span whose submission was not seen"
    header, (buffer,) = model.snapshot()
    assert header["kind"] == "snapshot" and len(_spans(buffer)) == 3 and header["names_from"] == 0
    assert len(header["names"]) == 3


def test_a_tick_with_more_spans_than_the_view_draws_keeps_the_last_ones_with_their_names():
    model = StreamModel()
    t0 = model.t0
    model.feed_raw([(0, "submitted", 0, 100, "early", "task", 100, 0, "driver", 0, 1)])  # (an earlier tick)
    events = [(1 + i, "submitted", 0, i, f"f{i}", "task", i, 0, "driver", 0, 1) for i in range(10)]
    events += [(11, "worker", 0, "worker-9", 99, "started", "")]
    events += [(12 + i, "finished", 0, i, "worker-1", 11, t0 + i, t0 + i, t0 + i, t0 + i + 1, True, 2) for i in (100, *range(10))]
    kept = model.thin(events, 3)
    assert [r[3] for r in kept if r[1] == "finished"] == [7, 8, 9] and model.skipped == 8
    model.feed_raw(kept)
    assert [model.names[int(s[3])] for s in model.spans] == ["f7", "f8", "f9"], "their submissions came along"
    assert model.thin(events[-3:], 3) == events[-3:], "no more than it draws: all of it"


def test_the_stream_model_draws_what_runs_from_the_activity_not_what_was_sent_ahead():
    from nexus.state import Activity, Running, WorkerActivity

    model = StreamModel(window=10)
    t0 = model.t0
    model.feed([_event("finished", id=7, worker="worker-1", start=t0, end=t0 + 50_000_000, ok=True)])

    def look(now, since):
        w1 = WorkerActivity("worker-1", 11, "box", "000001", "task", None, "running", (Running(8, "f", since),), 3)
        w2 = WorkerActivity("worker-2", 12, "box", "000001", "actor", "A (9)", "running", (Running(9, "A.m", 0),), 0)
        spare = WorkerActivity("worker-3", 13, "box", "000001", "actor", None, "idle", (), 0)
        model.look(Activity(now, (w1, w2, spare), (), 0, 0, 0))

    look(t0 + 100_000_000, t0 + 10_000_000)
    (f, m) = model.running
    assert f[2] == model.row("worker-1") and f[3] == 50.0, "it started when the head says, not before the last span's end"
    assert m[3] == 100.0, "an actor's call: from when it was first seen running"
    look(t0 + 200_000_000, t0 + 10_000_000)
    assert model.running[1][3] == 100.0, "still from its first sight"
    assert model.kinds == {"worker-1": "task", "worker-2": "A (9)", "worker-3": "spare"}
    version = model.version
    look(t0 + 200_000_000, t0 + 10_000_000)
    assert model.version == version, "the same activity is no change"


def test_the_stream_models_static_picture_has_an_axis_colours_a_legend_and_hosts():
    assert nice_ticks(-10_000, 0) == (2000, [-10_000, -8000, -6000, -4000, -2000, 0])
    model = StreamModel(window=10)
    t0 = model.t0
    model.feed([_event("submitted", id=i, name=n, parent=0) for i, n in ((1, "a"), (2, "b"), (3, "a"))])
    model.feed(
        [
            _event("finished", id=i, worker=w, start=t0 + i * 1_000_000, end=t0 + i * 1_000_000 + 500_000, ok=i != 3)
            for i, w in ((1, "w-a"), (2, "w-b"), (3, "w-c"))
        ]
    )
    html = model.to_html()
    assert "·" not in html, "one host: rows named by worker alone"
    assert "#4e79a7" in html and "#f28e2b" in html, "a colour per function"
    assert html.count("stroke='#d62728'") == 1, "the failure is edged in red"
    assert ">now<" in html and " s<" in html, "axis labels"
    model.hosts = {"w-a": "zeta", "w-b": "alpha", "w-c": "zeta"}
    html = model.to_html()
    assert html.index("w-b · alpha") < html.index("w-a · zeta") < html.index("w-c · zeta"), "sorted by host"
    assert "no tasks or calls yet" in StreamModel().to_html()


def test_cluster_model_places_actors_and_load():
    model = ClusterModel(host="box")
    workers = [WorkerState("worker-1", 11, "task", True, None, 1), WorkerState("worker-3", 13, "actor", True, "Greeter (7)", 0)]
    actors = [ActorState("7", "Greeter", "g", "default", "alive", "worker-3", 13, 2, 5, None)]
    model.update(workers, actors, {"worker-1": ["square"]})
    version = model.version
    model.update(workers, actors, {"worker-1": ["square"]})
    assert model.version == version, "an unchanged snapshot is not a change"
    model.feed([_event("sample", worker="worker-3", pid=13, cpu=55.0, rss=50 * 2**20, queued=5)])
    tree = model.tree()
    assert tree["host"] == "box"
    row = {r["worker"]: r for r in tree["workers"]}
    assert row["worker-1"]["running"] == ["square"] and row["worker-1"]["actor"] is None
    assert row["worker-3"]["actor"] == "Greeter (7)" and row["worker-3"]["restarts"] == 2 and row["worker-3"]["cpu"] == 55.0
    html = model.to_html()
    assert "Greeter (7)" in html and "square" in html and "55%" in html


def test_the_placement_map_shows_what_each_worker_really_does_the_backlog_and_each_hosts_store():
    from nexus.state import Activity, HostActivity, Running, WorkerActivity

    model = ClusterModel(host="box")
    workers = [
        WorkerState("worker-1", 11, "task", True, None, 3, "000001", "box"),
        WorkerState("worker-2", 12, "task", True, None, 1, "000001", "box"),
        WorkerState("worker-3", 13, "actor", True, None, 0, "000001", "box"),
    ]
    model.update(workers, [], {"worker-1": ["square", "square", "square"]})
    html = model.to_html()
    assert html.count("—") == 6, "before the first sample: no load shown (not 0 MB and 0%)"
    assert "spare (for the next actor)" in html, "a spare worker says so, as %nexus workers does"
    version = model.version
    activity = Activity(
        0,
        (
            WorkerActivity("worker-1", 11, "box", "000001", "task", None, "running", (Running(1, "square", 5),), 2),
            WorkerActivity("worker-2", 12, "box", "000001", "task", None, "blocked", (Running(2, "outer", 5),), 0),
            WorkerActivity("worker-3", 13, "box", "000001", "actor", None, "idle", (), 0),
        ),
        (HostActivity("box", "000001", 3 * 2**20, 4 * 2**30),),
        7,
        2,
        1,
    )
    model.look(activity)
    assert model.version > version
    model.feed([_event("sample", worker="worker-1", pid=11, cpu=97.0, rss=60 * 2**20, queued=2)])
    rows = {r["worker"]: r for r in model.tree()["workers"]}
    assert rows["worker-1"]["running"] == ["square"] and rows["worker-1"]["prefetched"] == 2, "one runs, two were sent ahead"
    assert rows["worker-2"]["state"] == "blocked"
    html = model.to_html()
    assert "running</span> square" in html and "2 sent ahead" in html and "waiting in get</span> (outer)" in html
    assert "7 tasks waiting for a worker, 2 for their arguments, 1 actor calls held" in html, "the backlog at the head"
    assert "object store" in html and "3.0 MiB of 4.0 GiB" in html and "memory 60.0 MiB" in html, "per host"
    assert "97%" in html and "1 busy" not in html and "2 busy" in html
    version = model.version
    model.look(activity)
    assert model.version == version, "the same activity is no change"


def test_cluster_model_shows_a_bridges_device_actors_under_its_worker():
    model = ClusterModel(host="box")
    workers = [WorkerState("worker-2", 12, "actor", True, "BridgeActor (9)", 0)]
    actors = [
        ActorState("9", "BridgeActor", "bridge:/dev/ttyACM0", "default", "alive", "worker-2", 12, 0, 0, None),
        ActorState("device:mbit0001/sensor", "device actor", "device:mbit0001/sensor", "", "alive", "worker-2", None, 0, 0, None),
        ActorState("device:mbit0001/led", "device actor", "device:mbit0001/led", "", "dead", "worker-2", None, 0, 0, "silent"),
    ]
    model.update(workers, actors, {})
    (row,) = model.tree()["workers"]
    assert row["actor"] == "BridgeActor (9)", "the worker's own actor is the bridge, not one of its device's"
    assert row["devices"] == ["device:mbit0001/sensor", "device:mbit0001/led (dead)"]
    assert "&#8627; device:mbit0001/sensor" in model.to_html()


def test_cluster_model_groups_workers_by_host_this_one_first():
    model = ClusterModel(host="laptop")
    workers = [
        WorkerState("worker-1", 11, "task", True, None, 0, "000001", "head-box"),
        WorkerState("worker-4", 11, "actor", True, "Greeter (7)", 0, "000002", "gpu-box"),
        WorkerState("worker-5", 12, "task", False, None, 0, "000002", "gpu-box"),
        WorkerState("worker-2", 12, "task", True, None, 0, "000001", "head-box"),
    ]
    model.update(workers, [ActorState("7", "Greeter", None, "default", "alive", "worker-4", 11, 0, 0, None)], {})
    groups = model.tree()["hosts"]
    assert [(g["host"], g["node_id"], [r["worker"] for r in g["workers"]]) for g in groups] == [
        ("head-box", "000001", ["worker-1", "worker-2"]),
        ("gpu-box", "000002", ["worker-4", "worker-5"]),
    ], "a driver's host without workers (an attached notebook's) is not a group"
    html = model.to_html()
    assert "<b>2 hosts</b> (driver on laptop" in html and "3 workers (0 busy), 1 actor" in html
    assert "<b>head-box</b> (node 000001): 2 workers" in html and "<b>gpu-box</b> (node 000002): 1 worker" in html
    alone = ClusterModel(host="box")
    alone.update([WorkerState("worker-1", 11, "task", True, None, 0)], [], {})
    assert [g["host"] for g in alone.tree()["hosts"]] == ["box"] and "<b>box</b> (driver pid" in alone.to_html()


def test_the_chrome_trace_has_a_row_per_host_and_process_even_where_pids_are_the_same():
    from nexus.observe.trace import chrome_trace

    raw = [
        ("finished", 5, 1, "worker-1", 100, 1_000, 1_100, 1_900, 2_000, True),
        ("finished", 6, 2, "worker-7", 100, 3_000, 3_100, 3_900, 4_000, True),
    ]
    trace = chrome_trace(raw, 42, {"worker-1": "host1", "worker-7": "host2"})
    names = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "process_name"}
    assert sorted(names.values()) == ["driver (pid 42)", "worker-1 on host1 (pid 100)", "worker-7 on host2 (pid 100)"]
    spans = {e["name"]: e["pid"] for e in trace["traceEvents"] if e.get("cat") == "task"}
    assert len(set(spans.values())) == 2 and all(names[p].endswith("(pid 100)") for p in spans.values())
    single = chrome_trace(raw[:1], 42, {"worker-1": "host1"})
    assert {e["pid"] for e in single["traceEvents"] if e["name"] == "process_name"} == {42, 100}, "one host: pids as they are"


def test_a_joined_nodes_timings_are_put_on_the_heads_clock():
    from types import SimpleNamespace

    from nexus.cluster.head.tasks import _head_time

    timing = (1_000, 1_100, 1_900, 2_000, True)
    assert _head_time(timing, SimpleNamespace(mono_offset=-500)) == (500, 600, 1_400, 1_500, True), "the head's clock runs behind"
    assert _head_time(timing, None) == timing, "a node that is gone: as it was"


def test_the_magic():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "nexus")
    try:
        shell.run_line_magic("nexus", "init 1")
        status = shell.run_line_magic("nexus", "status")
        assert "Nexus cluster" in status._repr_html_() and "workers" in repr(status)
        assert "worker-1" in repr(shell.run_line_magic("nexus", "workers"))
        assert "%nexus init" in shell.run_line_magic("nexus", "help")
    finally:
        shell.run_line_magic("nexus", "shutdown")
        InteractiveShell.clear_instance()
    assert not nexus.is_initialized()


def test_kernel_install_puts_a_kernel_in_the_list(tmp_path):
    env = dict(os.environ, JUPYTER_PATH=str(tmp_path / "share" / "jupyter"))
    subprocess.run([sys.executable, "-m", "nexus.manage.cli", "kernel", "install", "--prefix", str(tmp_path)], check=True, env=env)
    listing = subprocess.run(
        [sys.executable, "-m", "jupyter_client.kernelspecapp", "list", "--json"], capture_output=True, text=True, env=env, check=True
    ).stdout
    specs = json.loads(listing)["kernelspecs"]
    assert specs["nexus"]["spec"]["display_name"] == "Python 3 (Nexus)"
    assert specs["nexus"]["spec"]["argv"][0] == sys.executable
    shipped = json.loads((ROOT / "kernels" / "nexus" / "kernel.json").read_text())
    assert shipped["argv"][1:] == specs["nexus"]["spec"]["argv"][1:], "kernels/ documents the spec that is installed"


def test_the_kernel_starts_attached_to_a_cluster(tmp_path):
    from jupyter_client.manager import start_new_kernel

    from nexus.notebook.kernel import install

    install(prefix=str(tmp_path))
    os.environ["JUPYTER_PATH"] = str(tmp_path / "share" / "jupyter")
    try:
        manager, client = start_new_kernel(kernel_name="nexus")
        try:
            outputs: list[str] = []

            def keep(msg):
                if msg["msg_type"] in ("stream", "error"):
                    outputs.append(msg["content"].get("text") or msg["content"].get("ename", ""))

            reply = client.execute_interactive(
                "print(nexus.is_initialized(), len(nexus.state.list_workers()) > 0)", timeout=60, output_hook=keep
            )
            assert reply["content"]["status"] == "ok" and "True True" in "".join(outputs)
            # Interrupting a cell interrupts the get in it, not the cluster
            setup = "import time\n@nexus.remote\ndef nap(s):\n    time.sleep(s)\n    return s\n"
            assert client.execute_interactive(setup, timeout=60)["content"]["status"] == "ok"
            # stop_on_error=False: the kernel would otherwise abort the next cell if it came in while it still
            # drops what was queued behind the interrupted one (ipykernel ends that asynchronously: a race)
            msg_id = client.execute("ref = nap.remote(60)\nprint('getting', flush=True)\nnexus.get(ref)", stop_on_error=False)
            deadline = time.monotonic() + 60  # wait for the line printed just before the blocking get
            while True:
                msg = client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
                if msg["parent_header"].get("msg_id") != msg_id or msg["msg_type"] != "stream":
                    continue
                if "getting" in msg["content"]["text"]:
                    break
            manager.interrupt_kernel()
            reply = client.get_shell_msg(timeout=30)
            while reply["parent_header"].get("msg_id") != msg_id:
                reply = client.get_shell_msg(timeout=30)
            assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
            outputs.clear()
            reply = client.execute_interactive("print(nexus.get(nap.remote(0.1)))", timeout=60, output_hook=keep)
            assert reply["content"]["status"] == "ok" and "0.1" in "".join(outputs), "the cluster goes on"
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=False)
    finally:
        os.environ.pop("JUPYTER_PATH", None)
