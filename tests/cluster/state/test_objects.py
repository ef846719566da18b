"""The object table: an object lives while refs, pins, values holding it or tasks waiting for it count on it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.cluster.state.objects import ObjectEntry, ObjectTable, ObjectWait

from .stand_ins import StandInBlob


class Freed(list):
    """What the table freed, in order, with the region and spill file the caller must give back."""

    def __call__(self, oid: int, entry: ObjectEntry) -> None:
        self.append((oid, entry.region, entry.spilled))

    @property
    def ids(self) -> list[int]:
        return [oid for oid, _, _ in self]


def table() -> tuple[ObjectTable, Freed]:
    freed = Freed()
    return ObjectTable(on_free=freed), freed


def made(t: ObjectTable, oid: int, region: tuple[int, int] | None = None, refs: tuple[int, ...] = ()) -> ObjectEntry:
    """A new object given its value at once, as the head stores it (waiters told, then freed if nobody wants it)."""
    entry = t.new(oid)
    store(t, oid, StandInBlob(region=region, refs=refs))
    return entry


class Told(ObjectWait):
    """A waiter that records each time the table returns it as ready."""

    def __init__(self, name: str = "ready", told: list | None = None) -> None:
        super().__init__()
        self.name = name
        self.told = [] if told is None else told


def store(t: ObjectTable, oid: int, blob: StandInBlob) -> list | None:
    entry = t.get(oid)
    waiters = t.store(oid, blob)
    for waiter in waiters or ():
        if isinstance(waiter, Told):
            waiter.told.append(waiter.name)
    if waiters is not None and entry is not None:
        t.maybe_free(oid, entry)
    return waiters


# -- refs and pins ---------------------------------------------------------------------------


def test_a_new_object_has_its_makers_ref_and_waits_for_its_value() -> None:
    t, _ = table()
    entry = t.new(1)
    assert 1 in t and len(t) == 1 and list(t) == [1]
    assert (entry.refs, entry.pins, entry.blob) == (1, 0, None)


def test_an_object_is_freed_once_its_last_ref_and_pin_are_gone() -> None:
    t, freed = table()
    made(t, 1, region=(0, 64))
    t.change(1, 1, 1)  # a second ref, and a reader's view
    t.change(1, -2, 0)
    assert 1 in t and freed == []  # the view still reads its bytes
    t.change(1, 0, -1)
    assert 1 not in t and freed == [(1, (0, 64), None)]


def test_gaining_a_ref_never_frees() -> None:
    t, freed = table()
    made(t, 1)
    t.change(1, -1, 0)
    assert freed.ids == [1]
    assert t.change(1, 1, 0) is None  # too late: it is gone, and stays gone
    assert freed.ids == [1]


def test_an_object_whose_refs_all_went_before_it_was_made_is_freed_once_it_is() -> None:
    t, freed = table()
    t.new(1)
    t.change(1, -1, 0)
    assert 1 in t  # its maker still runs: the result is on its way
    store(t, 1, StandInBlob(region=(128, 8)))
    assert freed == [(1, (128, 8), None)]


def test_freeing_hands_over_the_region_and_spill_file_then_forgets_them() -> None:
    t, freed = table()
    entry = made(t, 1, region=(0, 64))
    entry.spilled = "0001"
    t.change(1, -1, 0)
    assert freed == [(1, (0, 64), "0001")]
    assert (entry.region, entry.spilled) == (None, None)


def test_refs_to_an_unknown_object_are_ignored() -> None:
    t, freed = table()
    assert t.change(99, -1, -1) is None and freed == []


# -- values -----------------------------------------------------------------------------------


def test_storing_names_the_blob_and_keeps_where_its_bytes_are() -> None:
    t, _ = table()
    blob = StandInBlob(region=(4096, 100))
    entry = t.new(7)
    store(t, 7, blob)
    assert blob.oid == 7 and entry.blob is blob and entry.region == (4096, 100)


def test_a_late_second_result_is_refused_so_its_region_can_be_given_back() -> None:
    t, _ = table()
    first = StandInBlob(region=(0, 8))
    entry = t.new(1)
    store(t, 1, first)
    assert t.store(1, StandInBlob(region=(8, 8))) is None
    assert entry.blob is first


def test_a_result_for_an_object_already_freed_is_refused() -> None:
    t, _ = table()
    made(t, 1)
    t.change(1, -1, 0)
    assert t.store(1, StandInBlob()) is None


def test_a_value_keeps_the_objects_it_holds_alive() -> None:
    t, freed = table()
    made(t, 1)
    made(t, 2, refs=(1,))
    t.change(1, -1, 0)  # the ref it was made with is dropped: the value of 2 still holds one
    assert 1 in t and freed == []
    t.change(2, -1, 0)
    assert freed.ids == [2, 1]


def test_a_value_may_hold_an_object_that_is_not_made_yet() -> None:
    t, freed = table()
    t.new(1)
    made(t, 2, refs=(1,))
    t.change(1, -1, 0)
    t.change(2, -1, 0)
    assert freed.ids == [2] and t.get(1).refs == 0  # type: ignore[union-attr]
    store(t, 1, StandInBlob())
    assert freed.ids == [2, 1]


def test_dropping_a_long_chain_of_values_holding_each_other_frees_them_all() -> None:
    t, freed = table()
    depth = 1000
    made(t, 1)
    for oid in range(2, depth + 1):  # ref = put([ref]) in a loop: each value holds the one before
        made(t, oid, refs=(oid - 1,))
        t.change(oid - 1, -1, 0)
    t.change(depth, -1, 0)
    assert len(t) == 0 and len(freed) == depth


def test_shutting_down_frees_everything_once_whoever_holds_it() -> None:
    t, freed = table()
    made(t, 1)
    made(t, 2, refs=(1,))
    t.change(2, 0, 1)
    for oid, entry in list(t.entries.items()):
        t.free(oid, entry)
    assert sorted(freed.ids) == [1, 2] and len(t) == 0


# -- dependencies ----------------------------------------------------------------------------


def test_a_task_counts_the_dependencies_not_made_yet_and_is_ready_once_the_last_is_made() -> None:
    t, _ = table()
    made(t, 1)
    t.new(2)
    t.new(3)
    task = Told()
    assert t.hold([1, 2, 3], task) == 2 and task.missing == 2
    store(t, 2, StandInBlob())
    assert task.told == [] and task.missing == 1
    store(t, 3, StandInBlob())
    assert task.told == ["ready"] and task.missing == 0


def test_waiters_of_one_object_are_returned_in_the_order_they_came() -> None:
    t, _ = table()
    t.new(1)
    told: list[str] = []
    first, second = Told("first", told), Told("second", told)
    t.hold([1], first)
    t.hold([1], second)
    store(t, 1, StandInBlob())
    assert told == ["first", "second"]


def test_a_wait_is_ready_once_enough_of_its_objects_are_made_and_counts_none_of_them() -> None:
    t, _ = table()
    made(t, 1)
    for oid in (2, 3, 4):
        t.new(oid)
    wait = Told()
    assert t.watch([1, 2, 3, 4], wait, 3) == 2  # 1 is made already
    assert t.get(2).refs == 1  # a wait keeps nothing alive
    store(t, 3, StandInBlob())
    assert wait.told == []
    store(t, 2, StandInBlob())
    assert wait.told == ["ready"]
    store(t, 4, StandInBlob())  # more than enough: told once
    assert wait.told == ["ready"]


def test_a_wait_that_has_enough_already_waits_for_nothing_and_an_unknown_id_counts_as_made() -> None:
    t, _ = table()
    made(t, 1)
    t.new(2)
    wait = Told()
    assert t.watch([1, 2], wait, 1) == 0
    assert not t.get(2).waiters
    assert t.watch([99, 2], wait, 1) == 0  # freed (a get says it is lost)
    assert t.watch([2, 2], wait, 2) == 2  # listed twice, counted twice
    store(t, 2, StandInBlob())
    assert wait.told == ["ready"]


def test_a_task_waiting_for_an_object_keeps_it_alive() -> None:
    t, freed = table()
    made(t, 1)
    t.hold([1], Told())
    t.change(1, -1, 0)  # the driver dropped its ref
    assert 1 in t
    t.change(1, -1, 0)  # the task is done with it
    assert freed.ids == [1]


def test_an_object_with_waiters_is_kept_until_it_is_made_and_they_are_told() -> None:
    t, freed = table()
    t.new(1)
    task = Told()
    t.hold([1], task)
    t.change(1, -2, 0)  # the maker's ref and the waiting task's (cancelled) are gone
    assert 1 in t
    store(t, 1, StandInBlob())
    assert task.told == ["ready"] and freed.ids == [1]


def test_a_dependency_already_freed_does_not_make_a_task_wait() -> None:
    t, _ = table()
    made(t, 1)
    t.change(1, -1, 0)
    assert t.hold([1], Told()) == 0


# -- spilling and statistics -----------------------------------------------------------------


def test_the_object_spilled_first_is_the_least_recently_used_one_in_the_arena_that_no_reader_pins() -> None:
    t, _ = table()
    old = made(t, 1, region=(0, 8))
    made(t, 2, region=(8, 8))
    made(t, 3, region=(16, 8))
    made(t, 4)  # inline: nothing in the arena to spill
    t.new(5)  # not made yet
    assert t.spill_victim() == (1, old)
    t.touch(old)  # read again
    assert t.spill_victim() == (2, t.get(2))
    t.change(2, 0, 1)  # a reader's view
    assert t.spill_victim() == (3, t.get(3))


def test_nothing_is_spilled_when_every_object_in_the_arena_is_pinned_or_spilled() -> None:
    t, _ = table()
    pinned = made(t, 1, region=(0, 8))
    t.change(1, 0, 1)
    spilled = made(t, 2, region=(8, 8))
    spilled.region, spilled.spilled = None, "0002"
    assert t.spill_victim() is None
    assert t.pinned_in_arena() == [pinned]


def test_statistics_count_objects_where_they_are() -> None:
    t, _ = table()
    made(t, 1, region=(0, 8))
    t.change(1, 0, 1)
    made(t, 2, region=(8, 8))
    spilled = made(t, 3, region=(16, 8))
    spilled.region, spilled.spilled = None, "0003"
    made(t, 4)
    t.new(5)
    assert t.statistics() == {"objects": 5, "objects_in_arena": 2, "pinned": 1, "spilled_now": 1}


# -- a property ------------------------------------------------------------------------------

_OBJECTS = range(1, 6)
_steps = st.lists(
    st.tuples(st.sampled_from(["ref", "unref", "pin", "unpin", "store", "hold"]), st.sampled_from(_OBJECTS), st.integers(0, 31)),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(steps=_steps)
def test_no_object_is_freed_while_anything_counts_on_it_and_each_is_freed_exactly_once(steps: list) -> None:
    """Random refs, pins, waiting tasks and values holding other objects (no cycles: a value holds older ids only)."""
    t: ObjectTable

    def on_free(oid: int, entry: ObjectEntry) -> None:
        assert oid not in freed, f"{oid} freed twice"
        assert refs[oid] == 0 and pins[oid] == 0 and entry.blob is not None
        assert not any(oid in contains[outer] for outer in t), f"{oid} freed while the value of an object alive holds it"
        freed.append(oid)

    t = ObjectTable(on_free=on_free)
    freed: list[int] = []
    refs = dict.fromkeys(_OBJECTS, 1)  # refs held outside the table's values: the maker's, others, waiting tasks
    pins = dict.fromkeys(_OBJECTS, 0)
    contains: dict[int, tuple[int, ...]] = dict.fromkeys(_OBJECTS, ())  # the refs each value holds, once made
    for oid in _OBJECTS:
        t.new(oid)

    def check() -> None:
        for oid in _OBJECTS:
            entry = t.get(oid)
            if refs[oid] or pins[oid]:
                assert entry is not None, f"{oid} freed while counted on"
            if entry is not None:
                held_by_values = sum(oid in contains[outer] for outer in t)
                assert (entry.refs, entry.pins) == (refs[oid] + held_by_values, pins[oid])

    for op, oid, bits in steps:
        entry = t.get(oid)
        if op == "ref" and entry is not None:
            t.change(oid, 1, 0)
            refs[oid] += 1
        elif op == "unref" and refs[oid]:
            refs[oid] -= 1
            t.change(oid, -1, 0)
        elif op == "pin" and entry is not None and entry.blob is not None:
            pins[oid] += 1
            t.change(oid, 0, 1)
        elif op == "unpin" and pins[oid]:
            pins[oid] -= 1
            t.change(oid, 0, -1)
        elif op == "store" and entry is not None and entry.blob is None:
            contains[oid] = tuple(i for i in _OBJECTS if i < oid and bits >> i & 1 and i in t)
            store(t, oid, StandInBlob(refs=contains[oid]))
        elif op == "hold" and entry is not None:
            refs[oid] += 1
            t.hold([oid], Told())
        check()

    for oid in _OBJECTS:  # everything let go, everything made
        while refs[oid]:
            refs[oid] -= 1
            t.change(oid, -1, 0)
        while pins[oid]:
            pins[oid] -= 1
            t.change(oid, 0, -1)
    for oid in _OBJECTS:
        entry = t.get(oid)
        if entry is not None and entry.blob is None:
            store(t, oid, StandInBlob())
    assert len(t) == 0 and sorted(freed) == list(_OBJECTS)


def test_a_wait_that_gives_up_leaves_no_waiter_behind() -> None:
    t, _ = table()
    t.new(1)
    t.new(2)
    for _ in range(100):  # (a poll: wait, time out, wait again)
        poll = Told()
        assert t.watch([1, 2, 1], poll, 1) == 1
        t.unwatch([1, 2, 1], poll)
    assert t.get(1).waiters == [] and t.get(2).waiters == []
    kept = Told("kept")
    t.watch([1], kept, 1)
    t.unwatch([1], Told("another"))
    assert t.get(1).waiters == [kept], "only that waiter goes"
    assert [w.name for w in store(t, 1, StandInBlob())] == ["kept"]
