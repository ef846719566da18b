"""Virtual actors of shared hosting (``virtual_hosting = "shared"``): many activations in one host process a node,
each identity's calls one at a time, the identities of a host side by side."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

import nexus
from nexus.core.errors import ActorDiedError
from nexus.notebook.models import ClusterModel
from tests.cluster.services.journal import calls_keep_their_order, journal_lines, open_journal, threads_keep_their_order
from tests.conftest import wait_until

KIND = "tests.cluster.services.test_virtual_hosted.Wallet"


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    nexus.init(num_cpus=2)
    try:
        yield
    finally:
        nexus.shutdown()


@nexus.remote
class Wallet:
    virtual_hosting = "shared"
    virtual_idle = 1.0

    def __init__(self) -> None:
        self.identity, self.balance, self.inside, self.most = "", 0, 0, 0
        self.spans: list[tuple[float, float]] = []
        self.seen: list[Any] = []

    def on_activate(self, identity: str) -> None:
        self.identity, self.balance = identity, 100
        nexus.get_actor("journal").write.tell(f"activate {identity}")

    def on_deactivate(self) -> None:
        nexus.get_actor("journal").write.tell(f"deactivate {self.identity} {self.balance}")

    def deposit(self, amount: int) -> tuple[str, int, int]:
        self.balance += amount
        return self.identity, self.balance, os.getpid()

    def crowded(self) -> int:
        """Sleeps a little, counting how many calls of this identity are inside at once."""
        self.inside += 1
        self.most = max(self.most, self.inside)
        time.sleep(0.02)
        self.inside -= 1
        return self.most

    async def nap(self, seconds: float) -> tuple[float, float]:
        start = time.monotonic()
        await asyncio.sleep(seconds)
        self.spans.append((start, time.monotonic()))
        return start, time.monotonic()

    def add(self, item: Any) -> None:
        self.seen.append(item)

    def read(self) -> list[Any]:
        return self.seen


@nexus.remote
def deposit_from_a_task(wallet: Any, amount: int) -> tuple[str, int, int]:
    return nexus.get(wallet.deposit.remote(amount), timeout=60)


def _directory() -> Any:
    return nexus.get_actor("nexus:directory")


def _entries(identity: str) -> list[dict[str, Any]]:
    return [e for e in nexus.get(_directory().listing.remote(), timeout=30) if e["identity"] == identity]


@pytest.fixture(autouse=True)
def journal() -> None:
    open_journal()


def test_many_identities_share_one_host_process_and_are_listed_as_actors_of_their_own() -> None:
    wallets = [Wallet.virtual(f"w{i}", idle=600) for i in range(300)]
    answers = nexus.get([w.deposit.remote(1) for w in wallets], timeout=120)
    assert [a[:2] for a in answers] == [(f"w{i}", 101) for i in range(300)]
    assert len({pid for _, _, pid in answers}) == 1, "one node: one host process for all of them"
    assert nexus.get(deposit_from_a_task.remote(wallets[7], 5), timeout=60)[:2] == ("w7", 106), "from a task too"

    rows = {a.name: a for a in nexus.state.list_actors()}
    (host,) = [a for a in rows.values() if (a.name or "").startswith(f"virtual-host:{KIND}@")]
    mine = [rows.get(f"virtual:{KIND}/w{i}") for i in range(300)]
    assert all(r is not None and r.state == "alive" and r.worker == host.worker and r.pid == host.pid for r in mine)
    assert mine[0] is not None and mine[0].class_name == "Wallet" and mine[0].actor_id == f"{host.actor_id}/w0"

    model = ClusterModel()
    model.update(*nexus.state.placement())
    (row,) = [r for r in model.tree()["workers"] if r["worker"] == host.worker]
    assert row["actor"].startswith("VirtualHost") and f"virtual:{KIND}/w0" in row["virtual"]
    assert "more virtual actors" in model.to_html()


def test_an_identity_runs_one_call_at_a_time_while_the_identities_of_a_host_run_side_by_side() -> None:
    one = Wallet.virtual("crowd", idle=600)
    assert max(nexus.get([one.crowded.remote() for _ in range(30)], timeout=60)) == 1, "never two calls of it at once"
    nappers = [Wallet.virtual(f"nap{i}", idle=600) for i in range(8)]
    nexus.get([n.deposit.remote(0) for n in nappers], timeout=60)  # (activated first: the naps then start together)
    naps = sorted(nexus.get([n.nap.remote(0.5) for n in nappers], timeout=60))
    assert any(b[0] < a[1] for a, b in zip(naps, naps[1:])), "two identities' coroutines were inside their calls at once"
    spans = sorted(nexus.get([one.nap.remote(0.05) for _ in range(6)], timeout=60))
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), "one identity's coroutine calls do not overlap either"


def test_calls_keep_their_order_from_the_first_forwarded_ones_to_those_under_a_lease_and_across_threads() -> None:
    calls_keep_their_order(Wallet.virtual("order", idle=600))
    threads_keep_their_order(Wallet.virtual("threads", idle=600), 3, 60)


def test_an_idle_activation_is_passivated_with_its_hook_and_its_host_stays() -> None:
    dave = Wallet.virtual("dave")  # (the class says: idle after 1 s)
    _, _, pid = nexus.get(dave.deposit.remote(1), timeout=30)
    wait_until(lambda: "deactivate dave 101" in journal_lines(), timeout=30)
    wait_until(lambda: not _entries("dave"))
    assert nexus.get(dave.deposit.remote(1), timeout=30) == ("dave", 101, pid), "activated again, in the same host"
    assert journal_lines().count("activate dave") == 2


def test_an_activation_whose_host_died_is_made_again_in_a_new_host() -> None:
    erin = Wallet.virtual("erin", idle=600)
    _, _, pid = nexus.get(erin.deposit.remote(1), timeout=30)
    (entry,) = _entries("erin")
    nexus.kill(nexus.get_actor(entry["host"]))
    wait_until(lambda: not any(a.name == entry["host"] and a.state == "alive" for a in nexus.state.list_actors()))
    with pytest.raises(ActorDiedError):
        nexus.get(erin.deposit.remote(1), timeout=30)
    wait_until(lambda: _answers(erin))  # (under a lease: once its renewal has found the loss)
    identity, balance, again = nexus.get(erin.deposit.remote(1), timeout=30)
    assert (identity, balance) == ("erin", 101) and again != pid
    assert _entries("erin")[0]["actor_id"] != entry["actor_id"]


def test_a_directory_that_restarts_adopts_what_the_hosts_hold_instead_of_making_it_again() -> None:
    gina = Wallet.virtual("gina", idle=600)
    assert nexus.get(gina.deposit.remote(1), timeout=30)[:2] == ("gina", 101)
    nexus.kill(_directory(), no_restart=False)  # (its process dies; it starts again with nothing in memory)
    wait_until(lambda: _answers(gina))
    assert nexus.get(gina.deposit.remote(1), timeout=30)[:2] == ("gina", 102), "the same activation: its state went on"
    assert journal_lines().count("activate gina") == 1
    wait_until(lambda: _known_again("gina"))  # (the directory started again and adopted it from its host)


def _known_again(identity: str) -> bool:
    try:
        return bool(_entries(identity))
    except ActorDiedError:  # (the call reached the directory's process as it died)
        return False


def test_a_bad_hosting_or_lease_and_a_missing_method_are_refused_at_once() -> None:
    @nexus.remote
    class Odd:
        virtual_hosting = "everywhere"

        def f(self) -> int:
            return 1

    @nexus.remote
    class Long:
        virtual_lease = 600

        def f(self) -> int:
            return 1

    with pytest.raises(ValueError, match="'process' .* or 'shared'"):
        Odd.virtual("x")
    with pytest.raises(ValueError, match="virtual_lease is a number of seconds above 0, up to 60"):
        Long.virtual("x")
    with pytest.raises(AttributeError, match="no method 'withdraw'"):
        Wallet.virtual("x").withdraw.remote(1)


def _answers(handle: Any) -> bool:
    try:
        nexus.get(handle.deposit.remote(0), timeout=30)
        return True
    except ActorDiedError:
        return False
