"""@nexus.method and concurrency groups, as Ray's: a method's default num_returns, and groups of methods that
each run their own number of calls at once, apart from the other methods' (threaded and async actors)."""

from __future__ import annotations

import asyncio
import threading

import pytest

import nexus


@nexus.remote(concurrency_groups={"io": 2})
class Threaded:
    def __init__(self) -> None:
        self.both_in = threading.Barrier(2, timeout=20)
        self.released = threading.Event()

    @nexus.method(concurrency_group="io")
    def io(self) -> str:
        self.both_in.wait()  # (both io calls at once: the group runs two)
        self.released.wait(20)
        return "io"

    def release(self) -> str:  # (the default group: it runs while both io calls wait)
        self.released.set()
        return "released"

    @nexus.method(num_returns=2)
    def pair(self) -> tuple[int, int]:
        return 1, 2


@nexus.remote(concurrency_groups={"io": 2, "compute": 1})
class Async:
    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self.go = asyncio.Event()  # (waited for on the io group's loop: set there, from the default one)
        self.io_loop: asyncio.AbstractEventLoop | None = None

    @nexus.method(concurrency_group="compute")
    async def compute(self) -> int:
        self.inside += 1
        self.most = max(self.most, self.inside)
        await asyncio.sleep(0.05)
        self.inside -= 1
        return self.most

    @nexus.method(concurrency_group="io")
    async def io(self) -> str:
        self.io_loop = asyncio.get_running_loop()
        await asyncio.wait_for(self.go.wait(), 20)
        return "io"

    async def release(self) -> None:
        assert self.io_loop is not None
        self.io_loop.call_soon_threadsafe(self.go.set)  # (an asyncio.Event is of one loop: set on another, it wakes no one)


def test_a_threaded_actors_group_runs_its_calls_side_by_side_apart_from_the_rest(cluster: str) -> None:
    actor = Threaded.remote()
    ios = [actor.io.remote(), actor.io.remote()]
    assert nexus.get(actor.release.remote(), timeout=30) == "released"
    assert nexus.get(ios, timeout=30) == ["io", "io"]
    first, second = actor.pair.remote()
    assert nexus.get([first, second], timeout=30) == [1, 2]


def test_an_async_actors_groups_each_keep_their_limit(cluster: str) -> None:
    actor = Async.remote()
    ios = [actor.io.remote() for _ in range(2)]  # (they wait: the io group's two are taken)
    most = nexus.get([actor.compute.remote() for _ in range(4)], timeout=30)
    assert max(most) == 1, "the compute group runs one call at a time, while io's wait"
    nexus.get(actor.release.remote(), timeout=30)
    assert nexus.get(ios, timeout=30) == ["io", "io"]


def test_groups_and_method_options_are_checked() -> None:
    with pytest.raises(ValueError, match="concurrency group 'io', which .*Missing does not have \\(it has other\\)"):

        @nexus.remote(concurrency_groups={"other": 1})
        class Missing:
            @nexus.method(concurrency_group="io")
            def f(self) -> None: ...

    with pytest.raises(ValueError, match="calls at once"):

        @nexus.remote(concurrency_groups={"io": 0})
        class Zero:
            pass

    with pytest.raises(TypeError, match="keyword options only"):
        nexus.method()
    with pytest.raises(ValueError, match="unknown option 'num_return'"):
        nexus.method(num_return=2)


@nexus.remote
class Named:
    @nexus.method(num_returns=2)
    def two(self) -> tuple[int, int]:
        return 1, 2

    def one(self, x: int) -> int:
        return x


def test_a_handle_from_get_actor_knows_the_methods_as_the_first_does(cluster: str) -> None:
    Named.options(name="named-methods").remote()
    found = nexus.get_actor("named-methods")
    assert nexus.get(list(found.two.remote()), timeout=30) == [1, 2], "num_returns=2, from @nexus.method"
    with pytest.raises(AttributeError, match="has no method 'three'"):
        found.three
    with pytest.raises(TypeError):
        found.one.remote(1, 2)  # (its signature: checked at the call)
    again = Named.options(name="named-methods", get_if_exists=True).remote()
    assert nexus.get(list(again.two.remote()), timeout=30) == [1, 2]


@nexus.remote(concurrency_groups={"slow": 1, "quick": 1})
class LoopPerGroup:
    @nexus.method(concurrency_group="slow")
    async def block(self, seconds: float) -> str:
        import time

        time.sleep(seconds)  # (blocks its loop: the group's own)
        return "blocked"

    @nexus.method(concurrency_group="quick")
    async def answer(self) -> str:
        return "answered"

    async def default(self) -> str:
        return "default"


def test_each_group_of_an_async_actor_runs_on_a_loop_of_its_own(cluster: str) -> None:
    actor = LoopPerGroup.remote()
    blocked = actor.block.remote(5.0)
    import time

    time.sleep(0.3)
    start = time.monotonic()
    assert nexus.get([actor.answer.remote(), actor.default.remote()], timeout=30) == ["answered", "default"]
    assert time.monotonic() - start < 4, "a call of another group waited for the blocked loop"
    assert nexus.get(blocked, timeout=30) == "blocked"


class _Base:
    INHERITED = 2


@nexus.remote
class WithConstants(_Base):
    OWN = 3

    @classmethod
    def four(cls) -> int:
        return 4

    def total(self) -> int:
        return WithConstants.INHERITED + WithConstants.OWN + WithConstants.four()  # (the actor class, inside the actor)


def test_an_actor_classs_own_attributes_are_read_through_it(cluster: str) -> None:
    assert (WithConstants.OWN, WithConstants.INHERITED, WithConstants.four()) == (3, 2, 4)
    assert nexus.get(WithConstants.remote().total.remote(), timeout=30) == 9
    with pytest.raises(AttributeError):
        _ = WithConstants.missing
    assert nexus.wait([]) == ([], [])


def test_an_actor_class_is_not_instantiated_nor_extended_but_its_plain_class_is() -> None:
    with pytest.raises(TypeError, match=r"cannot be instantiated directly; use WithConstants.remote\(...\)"):
        WithConstants()
    with pytest.raises(TypeError, match="Inheriting from actor classes is not currently supported: WithConstants is an"):

        class Derived(WithConstants):  # type: ignore[misc]
            pass

    @nexus.remote
    class FromThePlainOne(_Base):
        pass

    assert FromThePlainOne.INHERITED == 2


@nexus.remote(concurrency_groups={"io": 1})
class Loops:
    def __init__(self) -> None:
        import asyncio

        self.made_in = asyncio.get_event_loop()  # (the default group's loop, as Ray's)

    async def on_the_default_loop(self) -> bool:
        import asyncio

        return asyncio.get_running_loop() is self.made_in


@nexus.remote(concurrency_groups={"io": 1})
class Threads:
    def thread(self) -> str:
        import threading

        return threading.current_thread().name


def test_a_call_can_name_its_own_concurrency_group(cluster: str) -> None:
    loops = Loops.remote()
    assert nexus.get(loops.on_the_default_loop.remote(), timeout=30) is True
    assert nexus.get(loops.on_the_default_loop.options(concurrency_group="io").remote(), timeout=30) is False
    threads = Threads.remote()
    assert nexus.get(threads.thread.options(concurrency_group="io").remote(), timeout=30).startswith("nexus-actor-io")
    assert not nexus.get(threads.thread.remote(), timeout=30).startswith("nexus-actor-io")
    with pytest.raises(ValueError, match="actor class Threads has no concurrency group 'nope'"):
        nexus.get(threads.thread.options(concurrency_group="nope").remote(), timeout=30)
    with pytest.raises(TypeError, match="concurrency_group is the name of one of the actor's concurrency_groups, not 3"):
        threads.thread.options(concurrency_group=3)
