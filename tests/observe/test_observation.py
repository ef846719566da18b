"""Observation of a real cluster: connected traces across processes, metrics, the state API, the hub's sinks."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

import nexus
from nexus import observe
from nexus.observe import LoggingSink, ObservationSink

from ..conftest import wait_until


@pytest.fixture(scope="module")
def cluster():
    nexus.init(num_cpus=2)
    try:
        yield
    finally:
        nexus.shutdown()


@nexus.remote
class Greeter:
    def hello(self, x):
        return f"hello {x}"


@nexus.remote
def middle(greeter, x):
    return nexus.get(greeter.hello.remote(x))


@nexus.remote
def outer(greeter, x):
    return nexus.get(middle.remote(greeter, x))


@nexus.remote
def boom():
    raise ValueError("boom")


def _chain():
    greeter = Greeter.remote()
    nexus.get(greeter.hello.remote("warm"))
    assert nexus.get(outer.remote(greeter, "world")) == "hello world"
    return greeter


def test_a_chain_across_three_processes_is_one_trace_in_the_chrome_trace(cluster, tmp_path):
    _chain()
    path = tmp_path / "trace.json"
    nexus.timeline(str(path))
    trace = json.loads(path.read_text())
    events = trace["traceEvents"]
    assert all({"ph", "pid"} <= set(e) for e in events)
    spans = {e["name"]: e for e in events if e["ph"] == "X" and e.get("cat") in ("task", "call")}
    chain = [spans["outer"], spans["middle"], spans["Greeter.hello"]]
    assert len({s["pid"] for s in chain}) == 3, "three processes"
    assert len({s["args"]["trace"] for s in chain}) == 1, "one trace"
    assert chain[1]["args"]["parent"] == chain[0]["args"]["id"] and chain[2]["args"]["parent"] == chain[1]["args"]["id"]
    starts = {(e["id"], e["pid"]) for e in events if e["ph"] == "s"}
    ends = {(e["id"], e["pid"]) for e in events if e["ph"] == "f"}
    for parent, child in zip(chain, chain[1:], strict=False):
        flow = child["args"]["id"]  # hex, as the flow's id (ids are 96-bit: a JSON number would lose them)
        assert (flow, parent["pid"]) in starts and (flow, child["pid"]) in ends, "an arrow from caller to callee"
    names = {e["name"] for e in events if e["ph"] == "X" and e["pid"] == chain[0]["pid"]}
    assert {"read arguments", "run", "write results"} <= names


def test_a_chain_across_three_processes_is_one_opentelemetry_trace(cluster):
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    sink = observe.enable_tracing(SimpleSpanProcessor(exporter))
    try:
        _chain()
        deadline = time.monotonic() + 30  # a hang guard: the spans come from three processes
        wanted = {"outer", "middle", "Greeter.hello"}

        def one_trace() -> dict | None:  # (the ring holds earlier chains too: the newest whole one)
            found = exporter.get_finished_spans()
            for outer in sorted((s for s in found if s.name == "outer"), key=lambda s: s.start_time, reverse=True):
                same = {s.name: s for s in found if s.context.trace_id == outer.context.trace_id}
                if wanted <= set(same):
                    return same
            return None

        while time.monotonic() < deadline and one_trace() is None:
            observe.hub().flush()
            time.sleep(0.05)
        spans = one_trace()
        assert spans is not None, "the chain's three spans, in one trace"
        outer_span, middle_span, hello = spans["outer"], spans["middle"], spans["Greeter.hello"]
        assert middle_span.parent.span_id == outer_span.context.span_id
        assert hello.parent.span_id == middle_span.context.span_id
        assert len({outer_span.attributes["nexus.pid"], middle_span.attributes["nexus.pid"], hello.attributes["nexus.pid"]}) == 3
        assert outer_span.start_time <= middle_span.start_time <= hello.start_time <= hello.end_time <= outer_span.end_time
    finally:
        observe.hub().remove_sink(sink)


def _scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def _value(text, name):
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_prometheus_endpoint_serves_counters_that_move(cluster):
    sink = observe.start_metrics_server()
    try:
        assert sink.addr == "127.0.0.1", "loopback by default"
        observe.hub().flush()
        before = _value(_scrape(sink.port), 'nexus_calls_finished_total{status="ok",what="task"}')
        nexus.get([middle.remote(Greeter.remote(), i) for i in range(3)])
        with pytest.raises(ValueError):
            nexus.get(boom.remote())
        observe.hub().flush()
        text = _scrape(sink.port)
        assert _value(text, 'nexus_calls_finished_total{status="ok",what="task"}') >= before + 3
        assert _value(text, 'nexus_calls_finished_total{status="failed",what="task"}') >= 1
        assert "nexus_object_store_capacity_bytes" in text and "nexus_workers_alive" in text
    finally:
        observe.hub().remove_sink(sink)


def test_the_state_api(cluster):
    greeter = Greeter.options(name="state-greeter").remote()
    nexus.get(greeter.hello.remote(1))
    with pytest.raises(ValueError):
        nexus.get(boom.remote())
    workers = nexus.state.list_workers()
    assert sum(w.alive and w.kind == "task" for w in workers) == 2
    actors = {a.name: a for a in nexus.state.list_actors()}
    assert actors["state-greeter"].state == "alive" and actors["state-greeter"].pid
    failed = nexus.state.list_tasks(filters=[("state", "=", "failed")], limit=5)
    assert failed and failed[0].name == "boom"
    assert all(t.state != "failed" for t in nexus.state.list_tasks(filters=[("state", "!=", "failed")]))
    ref = nexus.put(b"x" * 100_000)
    objects = {o.object_id: o for o in nexus.state.list_objects()}
    assert objects[ref.hex().lstrip("0") or "0"].where == "arena"
    summary = nexus.state.summary()
    assert summary["workers"] >= 3 and summary["tasks"]["failed"] >= 1


def test_sinks_get_events_on_their_own_thread_and_are_told_what_they_missed(cluster, caplog):
    got: list = []

    class Collect(ObservationSink):
        def on_events(self, events, missed):
            got.append((len(events), missed, threading.current_thread().name))

    hub = observe.hub()
    for _ in range(hub.ring.capacity + 10):  # a flood: more than the ring holds, before any sink reads
        hub.emit("object", 0, "put", 1)
    with caplog.at_level(logging.WARNING, logger="nexus.observe"):
        # From the ring's start, which the flood lapped: the first delivery says how many were lost.
        sink = hub.add_sink(Collect(), from_now=False)
        logging_sink = hub.add_sink(LoggingSink(), from_now=False)
        try:
            wait_until(lambda: any("missed" in r.message for r in caplog.records) and got, timeout=30)
            assert got[0][1] >= 10, got[0]
            assert {name for _, _, name in got} == {"nexus-observe"}, "delivered by the hub's fan-out thread, not the emitter"
        finally:
            hub.remove_sink(sink)
            hub.remove_sink(logging_sink)


def test_without_the_optional_packages_the_message_says_what_to_install():
    script = (
        "import sys; sys.modules['prometheus_client'] = None; sys.modules['opentelemetry'] = None\n"
        "import nexus\n"
        "from nexus import observe\n"
        "nexus.init(num_cpus=1)\n"
        "try:\n"
        "    for start in (observe.start_metrics_server, lambda: observe.enable_tracing(exporter=object())):\n"
        "        try:\n"
        "            start()\n"
        "        except ImportError:\n"
        "            print('ImportError')\n"
        "        except Exception as exc:\n"
        "            print(type(exc).__name__, exc)\n"
        "finally:\n"
        "    nexus.shutdown()\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60).stdout
    assert "ImportError" not in out
    assert "pip install prometheus-client" in out and "pip install opentelemetry-sdk" in out
