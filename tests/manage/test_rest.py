"""The head's REST management port and the CLI on it, against a real cluster: ``nexus start --head`` and a node
that joins it (real processes, a real HTTP server and client); a driver attached to it makes the actors and tasks
the commands act on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nexus
from nexus.core.errors import ActorDiedError
from tests.remote.test_membership import Home, wait_for


@pytest.fixture(scope="module")
def port(head: Home) -> Iterator[httpx.Client]:
    found = json.loads((head.path / "head" / "management.json").read_text())
    with httpx.Client(base_url=f"http://{found['address']}", headers={"Authorization": f"Bearer {found['token']}"}, timeout=30) as client:
        yield client


def _nexus(head: Home, *args: str) -> subprocess.CompletedProcess[str]:
    return head.nexus(*args, check=False)


def _auth(head: Home) -> dict[str, str]:
    return {"Authorization": f"Bearer {json.loads((head.path / 'head' / 'management.json').read_text())['token']}"}


@nexus.remote
class Keeper:
    def ping(self) -> str:
        return "pong"


@nexus.remote
class Printer:
    def say(self, text: str) -> None:
        print(text, flush=True)


@nexus.remote
def sleeper(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


def test_the_port_listens_on_loopback_and_its_token_file_is_private(head: Home) -> None:
    state = head.head_state()
    path = Path(state["management_file"])
    assert (path.stat().st_mode & 0o777) == 0o600 and "token" not in state, "the state file names the token's file only"
    assert state["management"].startswith("127.0.0.1:")


def test_status_and_every_list_answer_as_the_cluster_is(head: Home, port: httpx.Client) -> None:
    keeper = Keeper.options(name="keeper", lifetime="detached").remote()
    assert nexus.get(keeper.ping.remote(), timeout=60) == "pong"
    status = port.get("/api/v1/status").json()["result"]
    assert status["alive"] == 2 and status["resources"]["total"]["CPU"] == 3.0
    assert status["summary"]["actors"].get("alive", 0) >= 1 and status["ports"]["rest"]["served"] >= 0
    for kind in ("nodes", "workers", "actors", "tasks", "objects", "devices"):
        answer = port.get("/api/v1/list", params={"kind": kind, "limit": 50})
        assert answer.status_code == 200 and isinstance(answer.json()["result"], list), (kind, answer.text)
    actors = port.get("/api/v1/list", params={"kind": "actors", "filter": "name=keeper"}).json()["result"]
    assert [a["name"] for a in actors] == ["keeper"] and actors[0]["state"] == "alive"
    assert port.get("/api/v1/list", params={"kind": "actors", "filter": "name!=keeper"}).json()["result"] != actors

    narrow = port.get("/api/v1/list", params={"kind": "nodes", "fields": "node_id,alive"}).json()["result"]
    assert [set(n) for n in narrow] == [{"node_id", "alive"}] * 2, narrow
    columns = _nexus(head, "list", "nodes", "--fields", "node_id,alive")
    assert columns.returncode == 0 and columns.stdout.split()[:2] == ["NODE_ID", "ALIVE"], columns.stdout + columns.stderr
    listed = _nexus(head, "list", "nodes", "--json")
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 2, listed.stderr
    table = _nexus(head, "list", "actors", "--filter", "name=keeper")
    assert table.returncode == 0 and table.stdout.splitlines()[0].startswith("ACTOR_ID") and "keeper" in table.stdout
    text = _nexus(head, "status")
    assert text.returncode == 0 and "resources (used / total):" in text.stdout and "actors: " in text.stdout
    assert "object store: " in text.stdout and "devices: none" in text.stdout
    assert json.loads(_nexus(head, "status", "--json").stdout)["cluster"]["alive"] == 2


def test_kill_cancel_and_drain_act_on_the_cluster(head: Home, port: httpx.Client) -> None:
    victim = Keeper.options(name="victim", lifetime="detached").remote()
    assert nexus.get(victim.ping.remote(), timeout=60) == "pong"
    killed = _nexus(head, "kill", "victim")
    assert killed.returncode == 0 and "killed actor" in killed.stdout, killed.stderr
    with pytest.raises(ActorDiedError):
        nexus.get(victim.ping.remote(), timeout=60)
    assert _nexus(head, "kill", "victim").returncode == 1, "no actor of that name any more"

    slow = sleeper.remote(60)
    task = wait_for(
        "the task to run", lambda: next((t for t in nexus.state.list_tasks() if t.name.endswith("sleeper") and t.state == "running"), None)
    )
    cancelled = _nexus(head, "cancel", task.task_id, "--force")
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout, cancelled.stderr
    with pytest.raises(Exception, match="cancel"):
        nexus.get(slow, timeout=60)
    assert "no task" in _nexus(head, "cancel", "abc").stderr

    answer = port.post("/api/v1/drain", json={"node": "ffffff"})
    assert answer.status_code == 400 and "there is no node" in answer.json()["error"]["message"]


def test_logs_follow_what_an_actor_prints_and_timeline_and_dump_write_their_files(head: Home, tmp_path: Path) -> None:
    printer = Printer.options(name="printer", lifetime="detached").remote()
    nexus.get(printer.say.remote("first words"), timeout=60)
    wait_for("the line in the head's log", lambda: "first words" in _nexus(head, "logs", "printer").stdout)
    follow = subprocess.Popen(
        [sys.executable, "-m", "nexus.manage.cli", "logs", "printer", "--tail", "1", "--follow"],
        env=head.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stdout is not None and "first words" in follow.stdout.readline()
        nexus.get(printer.say.remote("later words"), timeout=60)
        assert "later words" in follow.stdout.readline(), "--follow printed what came after"
    finally:
        follow.kill()
        follow.communicate()
    assert _nexus(head, "logs", "nobody").returncode == 1

    url = f"http://{head.head_state()['management']}/api/v1/logs"
    answer = httpx.get(url, params={"worker": "printer", "tail": 1}, headers=_auth(head))
    assert answer.status_code == 200 and len(answer.json()["result"]["lines"]) == 1, answer.text
    trace = tmp_path / "trace.json"
    assert _nexus(head, "timeline", str(trace)).returncode == 0
    unwritable = _nexus(head, "timeline", str(tmp_path / "no" / "such" / "folder.json"))
    assert unwritable.returncode == 1 and "No such file" in unwritable.stderr and "Traceback" not in unwritable.stderr
    assert json.loads(trace.read_text())["traceEvents"], "the recent events, as a Chrome trace"

    bundle = tmp_path / "dump.tar.gz"
    bundle.write_text("an older file, readable by all")
    os.chmod(bundle, 0o644)
    made = _nexus(head, "dump", "-o", str(bundle))
    assert made.returncode == 0 and (bundle.stat().st_mode & 0o777) == 0o600, made.stderr
    with tarfile.open(bundle) as tar:
        parts = {Path(m.name).name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    expected = {"versions.json", "config.json", "membership.json", "state.json", "metrics.json", "store.json", "events.json"}
    assert expected | {"stacks.txt", "head.log"} <= set(parts)
    assert json.loads(parts["versions.json"])["nexus"] == nexus.__version__
    assert len(json.loads(parts["membership.json"])) == 2 and "prefetch" in json.loads(parts["config.json"])
    stacks = parts["stacks.txt"].decode()
    assert "== the head's process ==" in stacks and "Thread 0x" in stacks, "every worker printed its stacks"
    assert " on " in stacks.split("== the workers")[1], "the joined node's workers too"


@nexus.remote
def busy(seconds: float) -> int:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return os.getpid()


def _families(client: httpx.Client) -> dict[str, list[Any]]:
    from prometheus_client.parser import text_string_to_metric_families

    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain"), answer.text
    return {f.name: f.samples for f in text_string_to_metric_families(answer.text)}


def test_the_head_serves_every_nodes_metrics_under_its_node_label(head: Home, port: httpx.Client) -> None:
    nodes = {n["NodeID"]: n for n in nexus.nodes() if n["Alive"]}
    assert len(nodes) == 2
    on = {node: nexus.NodeAffinitySchedulingStrategy(node, soft=False) for node in nodes}
    for strategy in on.values():
        assert len(nexus.get([busy.options(scheduling_strategy=strategy).remote(0.3) for _ in range(2)], timeout=60)) == 2

    def sampled() -> dict[str, list[Any]] | None:
        found = _families(port)
        rss = {s.labels["node"] for s in found["nexus_process_resident_bytes"] if s.value > 0}
        return found if len(rss) == 2 else None

    families = wait_for("every node's processes sampled (a node's come with its beats)", sampled)
    members = {s.labels["node"] for s in families["nexus_node_alive"] if s.value == 1.0}
    assert len(members) == 2
    finished = [s for s in families["nexus_calls_finished"] if s.name == "nexus_calls_finished_total" and s.labels["status"] == "ok"]
    by_node = {s.labels["node"]: s.value for s in finished if s.labels["what"] == "task"}
    assert all(by_node.get(node, 0) >= 2 for node in members), by_node
    assert {s.labels["node"] for s in families["nexus_process_resident_bytes"]} == members, "each process under its node"
    alive = {s.labels["node"]: s.value for s in families["nexus_workers_alive"]}
    assert set(alive) == members and all(v >= 2 for v in alive.values()), alive
    cpus = {s.labels["node"]: s.value for s in families["nexus_node_resource_total"] if s.labels["resource"] == "CPU"}
    assert sorted(cpus.values()) == [1.0, 2.0], cpus
    assert "nexus_object_store_capacity_bytes" in families and "nexus_call_seconds" in families

    base = str(port.base_url).rstrip("/")
    assert httpx.get(f"{base}/metrics", timeout=30).status_code == 401, "the metrics need the token too"
    bare = head.path / "head" / "management.token"
    assert (bare.stat().st_mode & 0o777) == 0o600, "the token alone, for Prometheus's credentials_file: private"
    scraped = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {bare.read_text()}"}, timeout=30)
    assert scraped.status_code == 200 and "nexus_node_alive" in scraped.text
    assert port.get("/api/v1/status", params={"brief": "true"}).json()["result"]["nodes"] == 2
    assert port.get("/api/v1/status", params={"brief": "maybe"}).status_code == 400


def test_a_head_without_events_or_prometheus_client_says_so_on_metrics() -> None:
    from types import SimpleNamespace

    from nexus.manage.port import CommandError
    from nexus.manage.scrape import ClusterMetrics

    quiet = ClusterMetrics(SimpleNamespace(observed=None), None)
    quiet.start()
    with pytest.raises(CommandError, match="records no events") as refused:
        quiet.render()
    assert refused.value.status == 409
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "prometheus_client", None)  # (as if it were not installed)
        bare = ClusterMetrics(SimpleNamespace(observed=object(), store_stats=dict), None)
        bare.start()
    with pytest.raises(CommandError, match="pip install prometheus-client") as missing:
        bare.render()
    assert missing.value.status == 501


@nexus.remote
def inner_pid() -> int:
    return os.getpid()


@nexus.remote
def outer_pid(node: str) -> tuple[int, int]:
    there = nexus.NodeAffinitySchedulingStrategy(node, soft=False)
    return nexus.get(inner_pid.options(scheduling_strategy=there).remote(), timeout=60), os.getpid()


def test_a_chain_of_calls_across_hosts_is_one_opentelemetry_trace(head: Home) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from nexus import observe

    first, second = [n["NodeID"] for n in nexus.nodes() if n["Alive"]]
    exporter = InMemorySpanExporter()
    sink = observe.enable_tracing(SimpleSpanProcessor(exporter))
    try:
        here = nexus.NodeAffinitySchedulingStrategy(first, soft=False)
        inner, outer = nexus.get(outer_pid.options(scheduling_strategy=here).remote(second), timeout=60)

        def spans() -> dict[str, Any] | None:
            observe.hub().flush()
            found = {s.name.rsplit(".", 1)[-1]: s for s in exporter.get_finished_spans()}
            return found if {"inner_pid", "outer_pid"} <= set(found) else None

        found = wait_for("both spans", spans)
        out, inn = found["outer_pid"], found["inner_pid"]
        assert out.context.trace_id == inn.context.trace_id and inn.parent.span_id == out.context.span_id
        assert (out.attributes["nexus.pid"], inn.attributes["nexus.pid"]) == (outer, inner)
        assert (out.attributes["nexus.node"], inn.attributes["nexus.node"]) == (first, second), "each span says its node"
        assert inn.attributes["host.name"] and out.start_time <= inn.start_time <= inn.end_time <= out.end_time
    finally:
        observe.hub().remove_sink(sink)


def test_a_missing_or_wrong_token_is_refused_and_counted(head: Home, port: httpx.Client) -> None:
    base = str(port.base_url)
    before = port.get("/api/v1/status").json()["result"]["ports"]["rest"]
    bare = httpx.get(f"{base}/api/v1/status", timeout=30)
    assert bare.status_code == 401 and "Bearer" in bare.json()["error"]["message"]
    wrong = httpx.get(f"{base}/api/v1/status", headers={"Authorization": "Bearer " + "x" * 43}, timeout=30)
    assert wrong.status_code == 403 and wrong.json()["ok"] is False
    basic = httpx.post(f"{base}/api/v1/kill", headers={"Authorization": "Basic abc"}, json={"actor": "keeper"}, timeout=30)
    assert basic.status_code == 403
    after = port.get("/api/v1/status").json()["result"]["ports"]["rest"]
    assert after["unauthorized"] == before["unauthorized"] + 1 and after["forbidden"] == before["forbidden"] + 2
    assert nexus.get_actor("keeper") is not None, "a refused kill killed nothing"

    loose = head.path / "loose.json"
    loose.write_text((head.path / "head" / "management.json").read_text())
    os.chmod(loose, 0o644)
    refused = _nexus(head, "list", "nodes", "--token-file", str(loose))
    assert refused.returncode == 1 and "chmod 600" in refused.stderr
    other = head.path / "other.json"
    other.write_text(json.dumps({"address": json.loads(loose.read_text())["address"], "token": "y" * 43}))
    os.chmod(other, 0o600)
    wrong_cli = _nexus(head, "list", "nodes", "--token-file", str(other))
    assert wrong_cli.returncode == 1 and "the token is wrong" in wrong_cli.stderr and "Traceback" not in wrong_cli.stderr
    elsewhere = _nexus(head, "list", "nodes", "--management", "127.0.0.1:9")
    assert elsewhere.returncode == 1 and "needs --token-file" in elsewhere.stderr, "this host's token goes to this host's head only"


def test_the_cli_never_sends_its_token_through_a_proxy(head: Home) -> None:
    saved = dict(head.env)
    head.env.update(http_proxy="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9", no_proxy="", NO_PROXY="")
    try:
        listed = _nexus(head, "list", "nodes", "--json")
    finally:
        head.env.clear()
        head.env.update(saved)
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 2, listed.stderr


def test_malformed_requests_get_400_with_a_message_and_unknown_ones_404(port: httpx.Client) -> None:
    cases: list[tuple[str, str, Any, int, str]] = [
        ("POST", "/api/v1/kill", b"{not json", 400, "not JSON"),
        ("POST", "/api/v1/kill", b"[1, 2]", 400, "an object"),
        ("POST", "/api/v1/kill", b'{"actor": 7}', 400, "the actor's id"),
        ("POST", "/api/v1/list", b'{"kind": "planets"}', 400, "kind is one of"),
        ("POST", "/api/v1/list", b'{"kind": "actors", "colour": 1}', 400, "unknown argument(s) colour"),
        ("GET", "/api/v1/list?kind=tasks&limit=lots", None, 400, "limit is a whole number"),
        ("GET", "/api/v1/list?kind=actors&filter=nonsense", None, 400, "KEY=VALUE"),
        ("GET", "/api/v1/list?kind=actors&filter=colour=red", None, 400, "no field 'colour'"),
        ("GET", "/api/v1/kill", None, 405, "POST it"),
        ("DELETE", "/api/v1/status", None, 405, "GET or POST"),
        ("GET", "/api/v1/launch", None, 404, "no command 'launch'"),
        ("GET", "/admin", None, 404, "/api/v1/<command>"),
        ("POST", "/api/v1/status", b"x" * (2 << 20), 413, ""),
    ]
    for method, path, body, status, says in cases:
        answer = port.request(method, path, content=body)
        assert answer.status_code == status, (method, path, answer.text[:300])
        assert answer.json()["ok"] is False and says in answer.json()["error"]["message"], answer.text[:300]
        assert "Traceback" not in answer.text


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_names = st.sampled_from(["status", "list", "kill", "cancel", "drain", "x", "", "..", "%00"]) | st.text(max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    method=st.sampled_from(["GET", "POST", "PUT"]),
    name=_names,
    body=st.one_of(_json.map(lambda v: json.dumps(v).encode()), st.binary(max_size=64)),
    query=st.dictionaries(st.sampled_from(["kind", "limit", "filter", "actor", "task"]), st.text(max_size=12), max_size=3),
)
def test_no_input_makes_the_port_fail_with_a_500(port: httpx.Client, method: str, name: str, body: bytes, query: dict[str, str]) -> None:
    if method == "POST" and name in ("kill", "cancel", "drain") and body.startswith(b"{"):
        body = b"{}"  # (what the fuzz sends is not to kill the fixture's actors or drain its node: arguments go missing)
    answer = port.request(method, f"/api/v1/{quote(name, safe='')}", params=query, content=body if method != "GET" else None)
    assert answer.status_code < 500, (method, name, body[:80], query, answer.text[:300])
    assert isinstance(answer.json()["ok"], bool)


def test_without_a_head_the_cli_says_so(tmp_path: Path) -> None:
    env = dict(os.environ, NEXUS_HOME=str(tmp_path / "empty"))
    argv = [sys.executable, "-m", "nexus.manage.cli", "list", "actors"]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "no head with a management port runs here" in result.stderr
