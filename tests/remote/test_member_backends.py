"""The head's nodes as members: suspected by phi before they are declared dead, and kept in etcd when asked.

Real daemons (``nexus start``) over real sockets, and a real etcd server (Debian's etcd-server).
"""

from __future__ import annotations

import os
import signal
import time

from nexus.cluster.services.etcd import EtcdMembership
from tests.remote.test_membership import Home, by_id, wait_for

LONG = "30"  # a node timeout that a test's silences stay well under (seconds)


def test_a_silent_node_is_suspected_by_phi_long_before_its_timeout_and_recovered_when_it_beats_again(home: Home) -> None:
    home.start_head("--node-timeout", LONG)
    home.start_node("--num-cpus", "1")
    assert by_id(home.status())[1]["state"] == "ALIVE"
    pid = home.node_pids()[1]
    os.kill(pid, signal.SIGSTOP)  # (silent: beats stop, the process and its link stay)
    try:
        node = wait_for("node 1 suspected", lambda: (n := by_id(home.status())[1])["state"] == "SUSPECTED" and n)
        assert node["alive"], "suspected is not dead: nothing is taken from it"
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for("node 1 heard again", lambda: by_id(home.status())[1]["state"] == "ALIVE")
    log = (home.path / "head" / "head.log").read_text()
    assert "node 1" in log and "is suspected: phi" in log and "no longer suspected" in log


def test_members_are_kept_in_etcd_and_the_cluster_goes_on_while_etcd_is_away(home: Home, etcd) -> None:
    home.start_head("--membership", f"etcd://127.0.0.1:{etcd.client}")
    home.start_node("--num-cpus", "1")
    reader = EtcdMembership(port=etcd.client, timeout=2.0)
    try:
        wait_for("the head and node 1 are members in etcd", lambda: {m.node for m in reader.members()} >= {"1"})
        time.sleep(3)  # (past the leases' time to live, the node timeout of 2 s: only their renewals keep them)
        assert len(reader.members()) == 2, "the head and node 1 are still members"
        etcd.stop()
        home.start_node("--num-cpus", "1")  # (joins while etcd is away: the head alone decides)
        nodes = by_id(home.status())
        assert nodes[1]["alive"] and nodes[2]["alive"]
        wait_for("the head said etcd is away", lambda: "cannot be reached" in (home.path / "head" / "head.log").read_text())
        etcd.start()
        wait_for("both nodes are members in etcd again", lambda: {"1", "2"} <= {m.node for m in _members(reader)})
        pid = home.node_pids()[2]
        os.kill(pid, signal.SIGTERM)  # (it leaves: its key goes)
        wait_for("node 2 left etcd", lambda: "2" not in {m.node for m in _members(reader)})
    finally:
        reader.close()


def _members(reader: EtcdMembership) -> list:
    try:
        return reader.members()
    except ConnectionError:
        return []
