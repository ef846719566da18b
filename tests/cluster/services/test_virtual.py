"""Virtual actors in a real local cluster: activated on first call, one activation per identity, passivated when idle."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import nexus
from nexus.core.errors import ActorDiedError
from tests.cluster.services.journal import calls_keep_their_order, journal_lines, open_journal, threads_keep_their_order
from tests.conftest import wait_until


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    nexus.init(num_cpus=2)
    try:
        yield
    finally:
        nexus.shutdown()


@nexus.remote
class Account:
    virtual_idle = 1.0

    def __init__(self) -> None:
        self.identity = ""
        self.balance = 0

    def on_activate(self, identity: str) -> None:
        self.identity = identity
        self.balance = 100  # (as if loaded from a store)
        nexus.get_actor("journal").write.tell(f"activate {identity}")

    def on_deactivate(self) -> None:
        nexus.get_actor("journal").write.tell(f"deactivate {self.identity} {self.balance}")

    def deposit(self, amount: int) -> tuple[str, int]:
        self.balance += amount
        return self.identity, self.balance


@nexus.remote
def deposit_from_a_task(account: Any, amount: int) -> tuple[str, int]:
    return nexus.get(account.deposit.remote(amount), timeout=30)


def _directory() -> Any:
    return nexus.get_actor("nexus:directory")


def test_the_first_call_activates_and_later_ones_from_anywhere_reach_that_one_activation() -> None:
    open_journal()
    alice = Account.virtual("alice", idle=60)
    assert nexus.get(alice.deposit.remote(5), timeout=30) == ("alice", 105)
    assert nexus.get(deposit_from_a_task.remote(Account.virtual("alice", idle=60), 10), timeout=30) == ("alice", 115)
    assert nexus.get([Account.virtual("bob", idle=60).deposit.remote(1) for _ in range(3)], timeout=30)[-1] == ("bob", 103)
    names = {a.name for a in nexus.state.list_actors() if a.state == "alive"}
    assert {"virtual:tests.cluster.services.test_virtual.Account/alice", "virtual:tests.cluster.services.test_virtual.Account/bob"} <= names
    assert Account.virtual("alice") == alice and repr(alice) == "VirtualActor(Account, 'alice')"


def test_many_first_calls_at_once_make_one_activation() -> None:
    before = nexus.get(_directory().counts.remote(), timeout=30)["activations"]
    carol = Account.virtual("carol", idle=60)
    answers = nexus.get(
        [deposit_from_a_task.remote(carol, 1) for _ in range(20)] + [carol.deposit.remote(1) for _ in range(20)], timeout=60
    )
    assert sorted(balance for _, balance in answers) == list(range(101, 141)), "every call reached the same state"
    counts = nexus.get(_directory().counts.remote(), timeout=30)
    assert counts["activations"] == before + 1
    assert counts["locks"] == 0, "an identity's lock lives while it is worked on, not for ever"


def test_an_idle_activation_is_passivated_with_its_hook_and_the_next_call_activates_it_again() -> None:
    open_journal()
    dave = Account.virtual("dave")  # (the class says: idle after 1 s)
    assert nexus.get(dave.deposit.remote(1), timeout=30) == ("dave", 101)
    wait_until(lambda: "deactivate dave 101" in journal_lines(), timeout=30)
    # (the hook's line can reach the journal before the directory has let the activation go)
    wait_until(lambda: "dave" not in {entry["identity"] for entry in nexus.get(_directory().listing.remote(), timeout=30)})
    assert nexus.get(dave.deposit.remote(1), timeout=30) == ("dave", 101), "activated again, from its stored state"
    assert journal_lines().count("activate dave") == 2


def test_a_lost_activation_is_made_again_by_the_next_call() -> None:
    erin = Account.virtual("erin", idle=60)
    nexus.get(erin.deposit.remote(1), timeout=30)
    (entry,) = [e for e in nexus.get(_directory().listing.remote(), timeout=30) if e["identity"] == "erin"]
    name = "virtual:tests.cluster.services.test_virtual.Account/erin"
    nexus.kill(nexus.get_actor(name))
    wait_until(lambda: not any(a.name == name and a.state == "alive" for a in nexus.state.list_actors()))
    with pytest.raises(ActorDiedError):
        nexus.get(erin.deposit.remote(1), timeout=30)
    wait_until(lambda: _answers_after_restart(erin))  # (under a lease: once its renewal has found the loss)
    assert nexus.get(erin.deposit.remote(1), timeout=30) == ("erin", 101)
    (again,) = [e for e in nexus.get(_directory().listing.remote(), timeout=30) if e["identity"] == "erin"]
    assert again["actor_id"] != entry["actor_id"]


@nexus.remote
class Log:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def add(self, i: int) -> int:
        self.seen.append(i)
        return i

    def read(self) -> list[int]:
        return self.seen


def test_calls_keep_their_order_from_the_first_forwarded_ones_to_those_under_a_lease() -> None:
    calls_keep_their_order(Log.virtual("order", idle=60))


def test_threads_sharing_a_lease_each_keep_their_calls_in_order() -> None:
    threads_keep_their_order(Log.virtual("threads", idle=60), 4, 80)


def test_calls_under_a_lease_go_straight_to_the_activation() -> None:
    log = Log.virtual("direct", idle=60)
    wait_until(lambda: _a_call_went_straight(log))  # (the first goes through the directory; the lease follows)
    before = _forwarded()
    for i in range(100):
        nexus.get(log.add.remote(i), timeout=30)
    assert _forwarded() - before <= 5, "(almost) no call went through the directory (a renewal late on a busy machine: one)"
    (entry,) = [e for e in nexus.get(_directory().listing.remote(), timeout=30) if e["identity"] == "direct"]
    assert entry["leased_s"] > 0


def _a_call_went_straight(log: Any) -> bool:
    before = _forwarded()
    nexus.get(log.add.remote(0), timeout=30)
    return _forwarded() == before


def _forwarded() -> int:
    return nexus.get(_directory().counts.remote(), timeout=30)["forwarded"]


def test_bad_identities_and_methods_are_refused_at_once() -> None:
    with pytest.raises(ValueError, match="without '/'"):
        Account.virtual("a/b")
    with pytest.raises(ValueError, match="non-empty string"):
        Account.virtual("")
    with pytest.raises(ValueError, match="positive number of seconds"):
        Account.virtual("x", idle=0)
    with pytest.raises(AttributeError, match=r"Account\('x'\) has no method 'withdraw'"):
        Account.virtual("x").withdraw.remote(1)


def test_an_activation_is_placed_by_its_classes_strategy_on_a_node_alive() -> None:
    frank = Account.virtual("frank", idle=60)
    nexus.get(frank.deposit.remote(1), timeout=30)
    (entry,) = [e for e in nexus.get(_directory().listing.remote(), timeout=30) if e["identity"] == "frank"]
    assert entry["node"] in {n["NodeID"] for n in nexus.nodes() if n["Alive"]}


def test_a_directory_that_restarts_adopts_the_activations_it_had_instead_of_making_others() -> None:
    open_journal()
    gina = Account.virtual("gina", idle=60)
    assert nexus.get(gina.deposit.remote(1), timeout=30) == ("gina", 101)
    nexus.kill(_directory(), no_restart=False)  # (its process dies; it starts again with nothing in memory)
    wait_until(lambda: _answers_after_restart(gina))
    assert nexus.get(gina.deposit.remote(1), timeout=30) == ("gina", 102), "the same activation: its state went on"
    assert journal_lines().count("activate gina") == 1


def _answers_after_restart(handle: Any) -> bool:
    try:
        nexus.get(handle.deposit.remote(0), timeout=30)
        return True
    except ActorDiedError:
        return False
