"""Three simulated hosts (network namespaces, veth pairs, a private /dev/shm each): a head, nodes and a driver apart.

Host 1 runs the head (bound to its veth address), hosts 2 and 3 join it as nodes with a copy of its key file, and
a driver on host 3 attaches across the network. A cut link (``ip link set DEV down``) is detected within the
node timeout, and the node that comes back is fenced and joins anew.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .hosts import Hosts, hosts_available
from .test_membership import TIMEOUT, wait_for

_WHY = hosts_available()
pytestmark = pytest.mark.skipif(_WHY is not None and os.environ.get("NEXUS_REQUIRE_NETNS") != "1", reason=f"simulated hosts: {_WHY}")


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    if _WHY is not None:
        pytest.fail(f"NEXUS_REQUIRE_NETNS=1 but simulated hosts cannot be made: {_WHY}")
    made = Hosts(3, tmp_path_factory.mktemp("hosts"))
    try:
        made.nexus(1, "start", "--head", "--bind", made.address(1), "--port", "0", "--node-timeout", str(TIMEOUT), "--num-cpus", "2")
        state = json.loads((made.homes[0] / "head" / "state.json").read_text())
        assert state["address"].startswith(made.address(1) + ":")
        for i in (2, 3):  # the key file goes to the other hosts (as scp would), private there too
            key = made.homes[i - 1] / "node.key"
            shutil.copyfile(state["node_key"], key)
            os.chmod(key, 0o600)
        made.state = state  # type: ignore[attr-defined]
        yield made
    finally:
        for i in (3, 2, 1):
            made.nexus(i, "stop", check=False, timeout=60)
        made.close()


def join(hosts: Hosts, i: int, *extra: str) -> str:
    return hosts.nexus(i, "start", "--address", hosts.state["address"], "--key", str(hosts.homes[i - 1] / "node.key"), *extra).stdout  # type: ignore[attr-defined]


def status(hosts: Hosts) -> dict:
    return json.loads(hosts.nexus(1, "status", "--json").stdout)


def test_nodes_on_two_other_hosts_join_the_head_across_the_network(hosts: Hosts) -> None:
    join(hosts, 2, "--num-cpus", "1", "--labels", "zone=b")
    join(hosts, 3, "--num-cpus", "3", "--resources", '{"GPU": 1}')
    nodes = [n for n in status(hosts)["nodes"] if n["alive"]]
    assert sorted(n["host"] for n in nodes) == ["host1", "host2", "host3"]
    by_host = {n["host"]: n for n in nodes}
    assert by_host["host1"]["head"] and by_host["host2"]["labels"] == {"zone": "b"}
    assert by_host["host3"]["resources"].pop("memory") > 0 and by_host["host3"]["resources"] == {"CPU": 3.0, "GPU": 1.0}
    assert all(abs(n["clock_offset"]) < 1.0 for n in nodes), "one machine's clock, estimated across the link"


DRIVER = textwrap.dedent(
    """
    import sys, time, json
    import numpy as np
    import nexus

    address, key = sys.argv[1], sys.argv[2]
    start = time.monotonic()
    nexus.init(address=address, key=key)
    attached = time.monotonic() - start

    @nexus.remote
    def total(a):
        return int(a.sum())

    @nexus.remote
    def ramp(n):
        return np.arange(n, dtype=np.int64)

    @nexus.remote
    class Counter:
        def __init__(self):
            self.n = 0
        def add(self, k):
            self.n += k
            return self.n

    big = np.arange(12_500_000, dtype=np.int64)  # 100 MB, across the link to the head's arena
    ref = nexus.put(big)
    out = {"attached_s": attached, "sum_ok": nexus.get(total.remote(ref), timeout=120) == int(big.sum())}
    back = nexus.get(ramp.remote(2_500_000), timeout=120)  # 20 MB made on host 1, back across the link
    out["back_ok"] = int(back[-1]) == 2_499_999
    c = Counter.remote()
    c.add.tell(2)
    out["actor"] = nexus.get(c.add.remote(3), timeout=60)
    out["hosts"] = sorted(n["NodeManagerHostname"] for n in nexus.nodes() if n["Alive"])
    import os
    out["my_shm"] = sorted(os.listdir("/dev/shm"))
    nexus.shutdown()
    print(json.dumps(out))
    """
)


def test_a_driver_on_another_host_attaches_and_its_values_cross_the_network(hosts: Hosts) -> None:
    out = hosts.python(3, DRIVER, hosts.state["address"], str(hosts.homes[2] / "node.key"))  # type: ignore[attr-defined]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["sum_ok"] and result["back_ok"] and result["actor"] == 5
    assert "host1" in result["hosts"]
    assert result["my_shm"] == [], "the driver's host shares no memory with the head's: the values crossed the link"
    assert result["attached_s"] < 5


def test_a_cut_link_is_detected_and_the_node_that_comes_back_is_fenced_and_joins_anew(hosts: Hosts) -> None:
    if not any(n["host"] == "host2" and n["alive"] for n in status(hosts)["nodes"]):
        join(hosts, 2, "--num-cpus", "1")
    before = {n["node_id"] for n in status(hosts)["nodes"] if n["host"] == "host2" and n["alive"]}
    hosts.link(2, up=False)
    cut = time.monotonic()
    try:
        wait_for("host2's node declared dead", lambda: not any(n["host"] == "host2" and n["alive"] for n in status(hosts)["nodes"]))
        took = time.monotonic() - cut
    finally:
        hosts.link(2, up=True)
    assert took >= TIMEOUT - 0.5
    dead = {n["node_id"]: n for n in status(hosts)["nodes"] if n["node_id"] in before}
    assert all(not n["alive"] and "not heard from" in n["why"] for n in dead.values())
    rejoined = wait_for(
        "host2's agent joined again under a new number",
        lambda: [n for n in status(hosts)["nodes"] if n["host"] == "host2" and n["alive"] and n["node_id"] not in before],
    )
    assert len(rejoined) == 1
    log = next(Path(hosts.homes[1] / "nodes").glob("node-*.log")).read_text()
    assert "joined again as node" in log


WORK = textwrap.dedent(
    """
    import sys, time, json, os
    import numpy as np
    import nexus

    nexus.init(address=sys.argv[1], key=sys.argv[2])

    @nexus.remote
    def where(x):
        time.sleep(0.3)
        return os.uname().nodename, x * x

    @nexus.remote
    def total(a):
        return os.uname().nodename, int(a.sum())

    out = {"cpus": nexus.cluster_resources()["CPU"]}
    results = nexus.get([where.remote(i) for i in range(24)], timeout=120)
    out["squares_ok"] = [r for _, r in results] == [i * i for i in range(24)]
    out["hosts"] = sorted({h for h, _ in results})
    big = np.arange(2_500_000, dtype=np.int64)  # 20 MB to whichever host runs it
    sums = nexus.get([total.remote(big) for _ in range(6)], timeout=120)
    out["sums_ok"] = all(s == int(big.sum()) for _, s in sums)
    out["sum_hosts"] = sorted({h for h, _ in sums})
    nexus.shutdown()
    print(json.dumps(out))
    """
)


def test_work_is_placed_on_the_workers_of_nodes_that_joined_from_other_hosts(hosts: Hosts) -> None:
    for i, cpus in ((2, "1"), (3, "2")):
        if not any(n["host"] == f"host{i}" and n["alive"] for n in status(hosts)["nodes"]):
            join(hosts, i, "--num-cpus", cpus)
    wait_for("the nodes' workers attached", lambda: _attached(hosts, "host2", "host3"))
    out = hosts.python(3, WORK, hosts.state["address"], str(hosts.homes[2] / "node.key"))  # type: ignore[attr-defined]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["cpus"] >= 5 and result["squares_ok"] and result["sums_ok"]
    assert result["hosts"] == ["host1", "host2", "host3"], "24 tasks of 0.3 s on 5 CPUs reach every host"


def _both_joined(hosts: Hosts) -> None:
    """Hosts 2 and 3 have live nodes of one CPU (joined again where an earlier test killed one), their workers
    attached."""
    for i in (2, 3):
        if not any(n["host"] == f"host{i}" and n["alive"] for n in status(hosts)["nodes"]):
            join(hosts, i, "--num-cpus", "1")
    wait_for("host2's and host3's workers attached", lambda: _attached(hosts, "host2", "host3"))


def _attached(hosts: Hosts, *names: str) -> bool:
    """Whether the alive nodes of hosts ``names`` each have a task worker that takes work (a node's CPUs count from its
    join, its workers once they attached)."""
    working = {n["host"] for n in status(hosts)["nodes"] if n["alive"] and n["workers"] > 0}
    return set(names) <= working


RETRIED = textwrap.dedent(
    """
    import sys, time, json, os
    import nexus

    nexus.init(address=sys.argv[1], key=sys.argv[2])

    @nexus.remote
    def slow(x):
        time.sleep(1.0)
        return os.uname().nodename, x

    refs = [slow.remote(i) for i in range(16)]
    print("submitted", flush=True)
    start = time.monotonic()
    results = nexus.get(refs, timeout=120)
    print(json.dumps({"ok": [x for _, x in results] == list(range(16)), "took": time.monotonic() - start,
                      "hosts": sorted({h for h, _ in results})}), flush=True)
    nexus.shutdown()
    """
)


def test_a_node_killed_with_tasks_running_there_has_them_retried_elsewhere(hosts: Hosts) -> None:
    if not any(n["host"] == "host2" and n["alive"] for n in status(hosts)["nodes"]):
        join(hosts, 2, "--num-cpus", "1")
    wait_for("host2's worker attached", lambda: _attached(hosts, "host2"))
    agent = live_agent(hosts, 2)
    driver = hosts.popen(3, [sys.executable, "-c", RETRIED, hosts.state["address"], str(hosts.homes[2] / "node.key")])  # type: ignore[attr-defined]
    try:
        assert driver.stdout is not None and driver.stdout.readline().strip() == "submitted"
        time.sleep(1.5)  # host2's worker is in a task by now
        os.kill(agent, signal.SIGKILL)
        out, err = driver.communicate(timeout=150)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ok"], err
    wait_for("host2's node declared dead", lambda: not any(n["host"] == "host2" and n["alive"] for n in status(hosts)["nodes"]))
    assert not [p for p in hosts.pids(2) if _cmdline(p).find("nexus.cluster.remote.worker") >= 0], "its workers died with it"


MOVED = textwrap.dedent(
    """
    import sys, json, os
    import numpy as np
    import nexus
    from nexus.core.errors import ObjectLostError

    nexus.init(address=sys.argv[1], key=sys.argv[2])
    ids = {n["NodeManagerHostname"]: n["NodeID"] for n in nexus.nodes() if n["Alive"]}
    on = {h: nexus.NodeAffinitySchedulingStrategy(ids[h], soft=False) for h in ("host1", "host2", "host3")}

    @nexus.remote
    def make(n):
        return np.arange(n, dtype=np.int64)

    @nexus.remote
    def total(a):
        return int(a.sum()), os.uname().nodename

    @nexus.remote
    def made(n):
        return np.arange(n, dtype=np.int64), os.uname().nodename

    @nexus.remote
    def double(pair):
        return pair[0] * 2, os.uname().nodename

    def where(ref):
        return {int(o.object_id, 16): o.where for o in nexus.state.list_objects()}[ref.id]

    ref = make.options(scheduling_strategy=on["host2"]).remote(12_500_000)  # 100 MB, written into host2's arena
    nexus.wait([ref], timeout=120)
    out = {"where": where(ref), "node": ids["host2"], "sum": 12_500_000 * 12_499_999 // 2}
    out["on_host3"] = nexus.get(total.options(scheduling_strategy=on["host3"]).remote(ref), timeout=120)  # pulled from host2
    out["on_host2"] = nexus.get(total.options(scheduling_strategy=on["host2"]).remote(ref), timeout=120)  # read in place
    out["here"] = int(nexus.get(ref, timeout=120).sum())  # this driver, on host3, pulls it from host2
    mine = nexus.put(np.arange(12_500_000, dtype=np.int64))  # into this driver's own arena, on host3
    out["put_where"] = where(mine)
    out["put_on_host2"] = nexus.get(total.options(scheduling_strategy=on["host2"]).remote(mine), timeout=120)  # from host3
    out["put_here"] = int(nexus.get(mine, timeout=120).sum())
    print(json.dumps(out), flush=True)
    sys.stdin.readline()
    out = {"again_on_host3": nexus.get(total.options(scheduling_strategy=on["host3"]).remote(ref), timeout=120)}  # its copy
    out["on_host1"] = nexus.get(total.options(scheduling_strategy=on["host1"]).remote(ref), timeout=120)
    out["where"] = where(ref)  # fetched into the head's arena for its host's worker
    prefer2 = nexus.NodeAffinitySchedulingStrategy(ids["host2"], soft=True)  # (one at a time: host2 is idle)
    first = made.options(scheduling_strategy=prefer2).remote(1_000_000)
    nexus.wait([first], timeout=120)
    second = double.options(scheduling_strategy=prefer2).remote(first)  # made from the first, both on host2
    nexus.wait([second], timeout=120)
    lost = make.options(scheduling_strategy=on["host2"]).remote(1_000_000)  # bound to host2: cannot be made elsewhere
    nexus.wait([lost], timeout=120)
    kept = make.options(scheduling_strategy=on["host2"]).remote(1_000_000)  # likewise, but read on host3: a copy there
    out["kept_read"] = nexus.get(total.options(scheduling_strategy=on["host3"]).remote(kept), timeout=120)
    out["made_on"] = [where(first), where(second)]
    print(json.dumps(out), flush=True)
    sys.stdin.readline()  # host2's agent is killed meanwhile, and declared dead
    out = {"lost": None}
    try:
        nexus.get(lost, timeout=60)
    except ObjectLostError as exc:
        out["lost"] = str(exc)
    out["kept"] = int(nexus.get(kept, timeout=60).sum())  # host3's copy is the value now
    a, a_host = nexus.get(first, timeout=120)  # made again elsewhere (lineage), and the value made from it too
    b, b_host = nexus.get(second, timeout=120)
    out["again"] = [int(a.sum()), a_host, int(b.sum()), b_host]
    ids = {first.id, second.id}
    del a, b, first, second  # nothing kept for lineage holds them now
    import time
    time.sleep(0.5)
    out["left"] = [o.object_id for o in nexus.state.list_objects() if int(o.object_id, 16) in ids]
    print(json.dumps(out))
    nexus.shutdown()
    """
)


def test_values_made_on_a_node_stay_there_and_go_to_readers_on_other_hosts_directly(hosts: Hosts) -> None:
    """A value made on host2 is read on host3 (a task, and the driver), and one the driver on host3 puts is read on
    host2, without crossing the head's link, and a second read on host3 reads the copy the first left there; the
    head's own worker gets a value fetched into its arena. When host2 dies, a value copied to host3 lives on there,
    values it held are made again elsewhere by their tasks (lineage), one made from another too; one whose task was
    bound to host2 is lost, and the error names it."""
    _both_joined(hosts)
    driver = hosts.popen(3, [sys.executable, "-c", MOVED, hosts.state["address"], str(hosts.homes[2] / "node.key")])  # type: ignore[attr-defined]
    try:
        assert driver.stdout is not None and driver.stdin is not None
        head_before, host3_before = hosts.traffic(1), hosts.traffic(3)
        line = driver.stdout.readline()
        head_moved, host3_moved = hosts.traffic(1) - head_before, hosts.traffic(3) - host3_before
        assert line, driver.communicate(timeout=30)
        first = json.loads(line)
        assert first["where"] == f"node {first['node']}"
        assert first["on_host3"] == [first["sum"], "host3"] and first["on_host2"] == [first["sum"], "host2"]
        assert first["here"] == first["sum"] == first["put_here"] and first["put_on_host2"] == [first["sum"], "host2"]
        assert first["put_where"].startswith("driver-")
        assert host3_moved > 300e6, f"host3 got the value twice (its task, its driver) and sent its put: {host3_moved:,} bytes"
        assert head_moved < 20e6, f"the value did not go through the head's host: {head_moved:,} bytes crossed its link"
        host3_before = hosts.traffic(3)
        driver.stdin.write("\n")
        driver.stdin.flush()
        second = json.loads(driver.stdout.readline())
        host3_moved = hosts.traffic(3) - host3_before
        assert second["again_on_host3"] == [first["sum"], "host3"]
        assert host3_moved < 20e6, f"the second read on host3 read the copy its first one left there: {host3_moved:,} bytes"
        assert second["on_host1"] == [first["sum"], "host1"] and second["where"] == "arena"
        assert second["made_on"] == [first["where"]] * 2
        os.kill(live_agent(hosts, 2), signal.SIGKILL)
        wait_for("host2's node declared dead", lambda: not any(n["host"] == "host2" and n["alive"] for n in status(hosts)["nodes"]))
        driver.stdin.write("\n")
        driver.stdin.flush()
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    last = json.loads(out.strip().splitlines()[-1])
    lost = last["lost"]
    assert lost is not None and f"node {first['node']} (host2)" in lost, (lost, err)
    total = 1_000_000 * 999_999 // 2
    assert last["again"][0::2] == [total, 2 * total] and "host2" not in last["again"][1::2], last
    assert last["kept"] == total, "a value bound to host2 but copied to host3 outlives host2"
    assert last["left"] == [], "freed once their refs were dropped, the first with the task kept to make the second"


LATE = textwrap.dedent(
    """
    import sys, json, os
    import numpy as np
    import nexus

    nexus.init(address=sys.argv[1], key=sys.argv[2])
    ids = {n["NodeManagerHostname"]: n["NodeID"] for n in nexus.nodes() if n["Alive"]}

    @nexus.remote
    def made(n):
        return np.arange(n, dtype=np.int64), os.uname().nodename

    @nexus.remote
    def total(pair):
        return int(pair[0].sum()), pair[1], os.uname().nodename

    first = made.options(scheduling_strategy=nexus.NodeAffinitySchedulingStrategy(ids["host2"], soft=True)).remote(1_000_000)
    nexus.wait([first], timeout=120)
    print(json.dumps({o.object_id: o.where for o in nexus.state.list_objects()}), flush=True)
    sys.stdin.readline()  # host2's agent is killed meanwhile, not yet declared dead: the task is given the value there
    reader = total.options(scheduling_strategy=nexus.NodeAffinitySchedulingStrategy(ids["host3"], soft=False)).remote(first)
    print(json.dumps(nexus.get(reader, timeout=120)))
    nexus.shutdown()
    """
)


def test_a_reader_whose_value_was_on_a_node_that_died_gets_it_made_again(hosts: Hosts) -> None:
    """A task on host3 is given a value that lives on host2 just as host2's agent is killed: its pull fails, and
    it waits for the head, which declares host2 dead and makes the value again elsewhere (lineage); the task reads
    that and ends well, instead of failing with the object lost."""
    _both_joined(hosts)
    driver = hosts.popen(3, [sys.executable, "-c", LATE, hosts.state["address"], str(hosts.homes[2] / "node.key")])  # type: ignore[attr-defined]
    try:
        assert driver.stdout is not None and driver.stdin is not None
        line = driver.stdout.readline()
        assert line, driver.communicate(timeout=30)
        assert any(where.startswith("node ") for where in json.loads(line).values()), f"the value is not on host2: {line}"
        os.kill(live_agent(hosts, 2), signal.SIGKILL)
        driver.stdin.write("\n")
        driver.stdin.flush()
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    assert driver.returncode == 0, err
    value, made_on, read_on = json.loads(out.strip().splitlines()[-1])
    assert value == 1_000_000 * 999_999 // 2 and read_on == "host3"
    assert made_on != "host2", "the value the task read was made again on a host that is alive"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


PLACED = textwrap.dedent(
    """
    import sys, time, json, os
    import nexus

    nexus.init(address=sys.argv[1], key=sys.argv[2])

    @nexus.remote
    def where(x):
        time.sleep(0.5)
        return os.uname().nodename

    ids = {n["NodeManagerHostname"]: n["NodeID"] for n in nexus.nodes() if n["Alive"]}
    out = {}
    for host, node in sorted(ids.items()):
        strategy = nexus.NodeAffinitySchedulingStrategy(node)
        out[host] = sorted(set(nexus.get([where.options(scheduling_strategy=strategy).remote(i) for i in range(3)], timeout=60)))
    out["spread"] = sorted(set(nexus.get([where.options(scheduling_strategy="SPREAD").remote(i) for i in range(3)], timeout=60)))
    nexus.shutdown()
    print(json.dumps(out))
    """
)


def test_node_affinity_and_spread_place_tasks_on_the_hosts_they_name(hosts: Hosts) -> None:
    for i in (2, 3):
        if not any(n["host"] == f"host{i}" and n["alive"] for n in status(hosts)["nodes"]):
            join(hosts, i, "--num-cpus", "1")
    wait_for("every node's worker attached", lambda: _attached(hosts, "host2", "host3"))
    out = hosts.python(3, PLACED, hosts.state["address"], str(hosts.homes[2] / "node.key"))  # type: ignore[attr-defined]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for host in ("host1", "host2", "host3"):
        assert result[host] == [host], f"tasks bound to {host} ran on {result[host]}"
    assert result["spread"] == ["host1", "host2", "host3"], "three tasks spread over three hosts"


VIEWS = textwrap.dedent(
    """
    import sys, time, json, os
    import nexus
    from nexus import observe, state
    from nexus.notebook.models import ClusterModel
    from nexus.notebook.stream import StreamModel

    nexus.init(address=sys.argv[1], key=sys.argv[2])

    @nexus.remote
    def where(x):
        time.sleep(0.2)
        return os.uname().nodename

    ids = {n["NodeManagerHostname"]: n["NodeID"] for n in nexus.nodes() if n["Alive"]}
    SLACK = 5_000_000
    before = time.monotonic_ns()
    refs = []
    for host, node in sorted(ids.items()):
        strategy = nexus.NodeAffinitySchedulingStrategy(node)
        refs += [where.options(scheduling_strategy=strategy).remote(i) for i in range(2)]
    ran = sorted(set(nexus.get(refs, timeout=60)))
    after = time.monotonic_ns()
    workers = state.list_workers()
    host_of = {w.name: w.host for w in workers}
    hub = observe.hub()
    spans = []
    for _ in range(50):  # (the head records a finish as the answer comes: all six are there by now, or soon)
        # inside the driver's window, to within the clocks' alignment (half a beat's round trip)
        spans = [e for e in hub.read(0)[0] if e.kind == "finished" and before - SLACK <= e["start"] and e["end"] <= after + SLACK]
        if len(spans) >= 6:
            break
        time.sleep(0.1)
    cluster = ClusterModel()
    cluster.update(*state.placement())
    trace = StreamModel(window=60)
    trace.hosts = host_of
    trace.feed(hub.read(0)[0])
    timeline = observe.timeline()
    rows = [e["args"]["name"] for e in timeline["traceEvents"] if e.get("name") == "process_name"]
    print(json.dumps({
        "ran": ran,
        "worker_hosts": sorted({w.host for w in workers if w.alive}),
        "span_hosts": sorted({host_of.get(e["worker"], "?") for e in spans}),
        "spans": len(spans),
        "groups": [g["host"] for g in cluster.tree()["hosts"]],
        "cluster_html": cluster.to_html(),
        "trace_html": trace.to_html(),
        "rows": rows,
        "where_finished": sum(t.state == "finished" for t in state.list_tasks(filters=[("name", "=", "where")])),
        "summary_workers": state.summary()["workers"],
    }))
    nexus.shutdown()
    """
)


def test_the_views_of_an_attached_driver_show_every_host_on_one_clock(hosts: Hosts) -> None:
    """A notebook attached to the head sees what the head sees: workers by host (ClusterView's model), the head's
    events followed (nexus.observe.hub()), spans of every host inside the driver's own window (the head puts a
    node's timings on its clock; one kernel here, so the offsets are ~0 and anything else would show), and a
    timeline with a row per host and process."""
    for i in (2, 3):
        if not any(n["host"] == f"host{i}" and n["alive"] for n in status(hosts)["nodes"]):
            join(hosts, i, "--num-cpus", "1")
    wait_for("every node's worker attached", lambda: _attached(hosts, "host2", "host3"))
    assert all(abs(n["mono_offset"]) < 0.05 for n in status(hosts)["nodes"] if n["alive"]), "one kernel's monotonic clock"
    out = hosts.python(3, VIEWS, hosts.state["address"], str(hosts.homes[2] / "node.key"))  # type: ignore[attr-defined]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    every = ["host1", "host2", "host3"]
    assert result["ran"] == every
    assert set(every) <= set(result["worker_hosts"]) and result["summary_workers"] >= 3
    assert result["span_hosts"] == every and result["spans"] >= 6, f"the spans of all six tasks, on the driver's clock: {result}"
    assert result["groups"][0] == "host3" and sorted(result["groups"]) == every, "the driver's host first, then the others"
    assert all(f"<b>{h}</b>" in result["cluster_html"] for h in every) and "3 hosts" in result["cluster_html"]
    assert all(f"· {h}" in result["trace_html"] for h in every), "timeline rows are named by host"
    assert {h for h in every if any(f" on {h} (pid " in r for r in result["rows"])} == set(every), result["rows"]
    assert result["where_finished"] >= 6, "list_tasks() is the head's: the tasks of this driver are there, finished"


ACTORS = textwrap.dedent(
    """
    import sys, time, json, os
    import nexus

    nexus.init(address=sys.argv[1], key=sys.argv[2])

    @nexus.remote
    class Where:
        def __init__(self):
            self.calls = 0
        def host(self):
            self.calls += 1
            return os.uname().nodename, os.getpid(), self.calls

    ids = {n["NodeManagerHostname"]: n["NodeID"] for n in nexus.nodes() if n["Alive"]}
    there = nexus.NodeAffinitySchedulingStrategy(ids["host2"], soft=True)
    actor = Where.options(scheduling_strategy=there, max_restarts=1, max_task_retries=1).remote()
    first = nexus.get(actor.host.remote(), timeout=60)
    second = nexus.get(actor.host.remote(), timeout=60)
    print(json.dumps({"first": first, "second": second}), flush=True)
    sys.stdin.readline()  # the test kills host2's node now
    after = nexus.get(actor.host.remote(), timeout=90)
    nexus.shutdown()
    print(json.dumps({"after": after}), flush=True)
    """
)


def test_an_actor_placed_on_another_host_restarts_elsewhere_when_that_node_dies(hosts: Hosts) -> None:
    if not any(n["host"] == "host2" and n["alive"] for n in status(hosts)["nodes"]):
        join(hosts, 2, "--num-cpus", "1")
    wait_for("host2's workers attached", lambda: _attached(hosts, "host2"))
    driver = hosts.popen(3, [sys.executable, "-c", ACTORS, hosts.state["address"], str(hosts.homes[2] / "node.key")])  # type: ignore[attr-defined]
    try:
        assert driver.stdout is not None
        placed = json.loads(driver.stdout.readline())
        assert placed["first"][0] == "host2" and placed["second"][2] == 2, placed
        agent = live_agent(hosts, 2)
        os.kill(agent, signal.SIGKILL)
        # (its workers live on until the head declares the node dead: a call sent before then is still answered there)
        wait_for("host2's node is dead", lambda: not any(n["host"] == "host2" and n["alive"] for n in status(hosts)["nodes"]))
        out, err = driver.communicate(input="\n", timeout=150)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    after = json.loads(out.strip().splitlines()[-1])["after"]
    assert after[0] != "host2" and after[2] == 1, f"restarted elsewhere, constructor run again: {after} {err}"


def live_agent(hosts: Hosts, i: int) -> int:
    """The pid of host ``i``'s running node agent (a killed one leaves its state file behind)."""
    for path in (hosts.homes[i - 1] / "nodes").glob("node-*.json"):
        pid = json.loads(path.read_text())["pid"]
        if Path(f"/proc/{pid}").exists():
            return int(pid)
    raise AssertionError(f"no node agent runs on host{i}")


def test_a_partitioned_node_is_declared_dead_and_joins_anew_when_the_partition_heals(hosts: Hosts) -> None:
    """Host 3 is cut off while its link stays up (see Hosts.partition): the head hears nothing, then hears it again."""
    if not any(n["host"] == "host3" and n["alive"] for n in status(hosts)["nodes"]):
        join(hosts, 3, "--num-cpus", "1")
    before = {n["node_id"] for n in status(hosts)["nodes"] if n["host"] == "host3" and n["alive"]}
    hosts.partition(3, on=True)
    try:
        wait_for("host3's node declared dead", lambda: not any(n["host"] == "host3" and n["alive"] for n in status(hosts)["nodes"]))
    finally:
        hosts.partition(3, on=False)
    wait_for(
        "host3's agent joined again under a new number",
        lambda: [n for n in status(hosts)["nodes"] if n["host"] == "host3" and n["alive"] and n["node_id"] not in before],
    )


RESOURCES = textwrap.dedent(
    """
    import sys, json, os, time
    import nexus

    nexus.init(address=sys.argv[1], key=sys.argv[2])

    @nexus.remote
    def where():
        return os.uname().nodename

    out = {}
    out["gpu"] = sorted(set(nexus.get([where.options(num_gpus=1).remote() for _ in range(3)], timeout=60)))
    out["wide"] = nexus.get(where.options(num_cpus=3).remote(), timeout=60)
    out["zone_b"] = sorted(set(nexus.get([where.options(label_selector={"zone": "b"}).remote() for _ in range(3)], timeout=60)))
    try:  # 6 CPUs in all, never 4 on one node (an attached driver's submit is not answered: get raises)
        nexus.get(where.options(num_cpus=4).remote(), timeout=30)
        out["never"] = None
    except ValueError as exc:
        out["never"] = str(exc)

    @nexus.remote(num_gpus=1)
    class Trainer:
        def host(self):
            return os.uname().nodename

    trainer = Trainer.remote()
    out["actor"] = nexus.get(trainer.host.remote(), timeout=60)
    ref = where.options(num_gpus=1).remote()  # the actor holds the only GPU: this waits, and says why
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not [t for t in nexus.state.list_tasks() if t.state == "queued" and t.kind == "task"]:
        time.sleep(0.05)
    out["waiting"] = [t.waiting_for for t in nexus.state.list_tasks() if t.state == "queued" and t.kind == "task"]
    out["free_gpu"] = nexus.available_resources().get("GPU", 0.0)
    nexus.kill(trainer)
    out["after"] = nexus.get(ref, timeout=60)
    holder = Trainer.remote()
    nexus.get(holder.host.remote(), timeout=60)
    stranded = where.options(num_gpus=1).remote()
    second = Trainer.remote()  # the GPU is held: this actor waits for it, as in Ray
    second_ref = second.host.remote()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not [a.waiting_for for a in nexus.state.list_actors() if a.waiting_for]:
        time.sleep(0.05)
    out["actor_waiting"] = [a.waiting_for for a in nexus.state.list_actors() if a.waiting_for]
    print(json.dumps(out), flush=True)
    sys.stdin.readline()  # the test kills host3's node now: the queued GPU task can never run
    try:
        nexus.get(stranded, timeout=60)
        out["stranded"] = None
    except Exception as exc:
        out["stranded"] = f"{type(exc).__name__}: {exc}"
    try:  # the waiting actor: no node has a GPU any more
        nexus.get(second_ref, timeout=60)
        out["second"] = None
    except Exception as exc:
        out["second"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps({"stranded": out["stranded"], "second": out["second"]}), flush=True)
    nexus.shutdown()
    """
)


def test_tasks_and_actors_go_to_the_node_that_has_what_they_need(hosts: Hosts) -> None:
    for i in (2, 3):
        hosts.nexus(i, "stop", timeout=60)
    join(hosts, 2, "--num-cpus", "1", "--labels", "zone=b")
    join(hosts, 3, "--num-cpus", "3", "--resources", '{"GPU": 1}', "--labels", "zone=c")
    wait_for("both nodes' workers attached", lambda: _attached(hosts, "host2", "host3"))
    driver = hosts.popen(2, [sys.executable, "-c", RESOURCES, hosts.state["address"], str(hosts.homes[1] / "node.key")])  # type: ignore[attr-defined]
    try:
        assert driver.stdout is not None
        line = driver.stdout.readline()
        assert line, driver.communicate(timeout=30)[1]
        result = json.loads(line)
        os.kill(live_agent(hosts, 3), signal.SIGKILL)
        out, err = driver.communicate(input="\n", timeout=150)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    assert result["gpu"] == ["host3"] and result["wide"] == "host3", "only host3 has a GPU, and 3 CPUs"
    assert result["zone_b"] == ["host2"]
    assert "it needs 4 CPU on one node and no node has that" in result["never"]
    assert result["actor"] == "host3" and result["after"] == "host3"
    assert result["free_gpu"] == 0.0
    assert len(result["waiting"]) == 1 and re.fullmatch(r"waiting for 1 CPU, 1 GPU: node [0-9a-f]{6} has 0 GPU free", result["waiting"][0])
    last = json.loads(out.strip().splitlines()[-1])
    stranded = last["stranded"]
    assert stranded is not None and "can never run now" in stranded and "no other node has what it needs" in stranded, err
    assert result["actor_waiting"] == ["Trainer needs 1 GPU on one node, more than any node has free now"], result
    second = last["second"] or ""
    assert "can never run" in second and "the node that could hold it is gone" in second, last


@pytest.mark.timeout(900)
def test_the_cluster_api_tests_pass_from_another_host_with_the_tasks_on_the_nodes(hosts: Hosts) -> None:
    """tests/cluster/test_api.py (tasks, actors, get/wait/put, errors, nested calls, large arrays) from a driver on
    host 3, attached to a head on host 1 that offers no CPU of its own: every task runs on a node of host 2 or 3
    (1 CPU each), every value crosses the network, and actors run on the head's host. (Last here: it restarts the
    head and the nodes, as the earlier tests leave them otherwise.)"""
    for i in (3, 2, 1):
        hosts.nexus(i, "stop", timeout=60)
    hosts.nexus(1, "start", "--head", "--bind", hosts.address(1), "--port", "0", "--node-timeout", str(TIMEOUT), "--num-cpus", "0")
    hosts.state = json.loads((hosts.homes[0] / "head" / "state.json").read_text())  # type: ignore[attr-defined]
    for i in (2, 3):
        join(hosts, i, "--num-cpus", "1")
    wait_for("both nodes' workers attached", lambda: _attached(hosts, "host2", "host3"))
    key = hosts.homes[2] / "node.key"
    tests = Path(__file__).resolve().parents[1]
    attach = f"NEXUS_TEST_ATTACH={hosts.state['address']} {key}"  # type: ignore[attr-defined]
    argv = ["env", attach, sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", "-o", "timeout=90"]
    argv += ["--rootdir", str(tests.parent)]
    proc = hosts.run(3, [*argv, str(tests / "cluster" / "test_api.py")], timeout=600, check=False)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, f"{summary}\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
    assert re.search(r"\d+ passed", summary) and "failed" not in summary, summary
