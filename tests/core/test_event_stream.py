"""EventStream: subscribe by type and base type, unsubscribe, failing handlers."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import pytest

from nexus.core.event_stream import EventStream, Subscription


@dataclass
class Event:
    name: str


@dataclass
class Started(Event):
    pass


@dataclass
class Stopped(Event):
    pass


@dataclass
class Other:
    pass


def test_subscribe_by_exact_type_receives_only_that_type() -> None:
    stream = EventStream()
    got: list[Any] = []
    stream.subscribe(Started, got.append)
    started, stopped = Started("a"), Stopped("b")
    stream.publish(started)
    stream.publish(stopped)
    stream.publish(Other())
    assert got == [started]


def test_subscribe_by_base_class_receives_subclass_events() -> None:
    stream = EventStream()
    got: list[Any] = []
    stream.subscribe(Event, got.append)
    events = [Started("a"), Stopped("b"), Event("c")]
    for e in events:
        stream.publish(e)
    stream.publish(Other())
    assert got == events


def test_a_subclass_subscriber_does_not_receive_base_class_events() -> None:
    stream = EventStream()
    got: list[Any] = []
    stream.subscribe(Started, got.append)
    stream.publish(Event("base"))
    assert got == []


def test_subscribing_to_object_receives_everything() -> None:
    stream = EventStream()
    got: list[Any] = []
    stream.subscribe(object, got.append)
    for e in (1, "s", Other(), Started("x")):
        stream.publish(e)
    assert got == [1, "s", Other(), Started("x")]


def test_builtin_types_can_be_subscribed_to() -> None:
    stream = EventStream()
    ints: list[int] = []
    stream.subscribe(int, ints.append)
    stream.publish(3)
    stream.publish(True)  # bool is a subclass of int
    stream.publish("3")
    assert ints == [3, True]


def test_every_matching_handler_gets_each_event_once() -> None:
    stream = EventStream()
    calls: list[tuple[str, Any]] = []
    stream.subscribe(Started, lambda e: calls.append(("started", e)))
    stream.subscribe(Event, lambda e: calls.append(("event", e)))
    stream.subscribe(object, lambda e: calls.append(("object", e)))
    stream.subscribe(Stopped, lambda e: calls.append(("stopped", e)))
    event = Started("x")
    stream.publish(event)
    assert sorted(calls) == [("event", event), ("object", event), ("started", event)]


def test_handlers_of_one_type_run_in_subscription_order() -> None:
    stream = EventStream()
    order: list[int] = []
    for i in range(5):
        stream.subscribe(Event, lambda _e, i=i: order.append(i))
    stream.publish(Event("x"))
    assert order == [0, 1, 2, 3, 4]


def test_the_same_handler_subscribed_twice_runs_twice_until_each_is_unsubscribed() -> None:
    stream = EventStream()
    got: list[Any] = []
    first = stream.subscribe(Event, got.append)
    stream.subscribe(Event, got.append)
    stream.publish(Event("x"))
    assert len(got) == 2
    first.unsubscribe()
    stream.publish(Event("y"))
    assert got[2:] == [Event("y")]


def test_handlers_run_synchronously_on_the_publishing_thread() -> None:
    stream = EventStream()
    threads: list[threading.Thread] = []
    stream.subscribe(Event, lambda _e: threads.append(threading.current_thread()))
    t = threading.Thread(target=stream.publish, args=(Event("x"),), name="test-publisher")
    t.start()
    t.join(5)
    assert threads == [t]
    stream.publish(Event("y"))
    assert threads == [t, threading.current_thread()]


# ---- unsubscribe ------------------------------------------------------------------


def test_unsubscribe_stops_delivery() -> None:
    stream = EventStream()
    got: list[Any] = []
    sub = stream.subscribe(Event, got.append)
    assert isinstance(sub, Subscription)
    assert sub.active
    assert sub.event_type is Event
    stream.publish(Event("before"))
    sub.unsubscribe()
    assert not sub.active
    stream.publish(Event("after"))
    assert got == [Event("before")]


def test_unsubscribe_via_the_stream_and_twice_is_harmless() -> None:
    stream = EventStream()
    got: list[Any] = []
    sub = stream.subscribe(Event, got.append)
    stream.unsubscribe(sub)
    stream.unsubscribe(sub)
    sub.unsubscribe()
    stream.publish(Event("x"))
    assert got == []
    assert not stream.has_subscribers(Event)


def test_unsubscribe_leaves_the_other_subscriptions_in_place() -> None:
    stream = EventStream()
    a: list[Any] = []
    b: list[Any] = []
    base: list[Any] = []
    sub_a = stream.subscribe(Started, a.append)
    stream.subscribe(Started, b.append)
    stream.subscribe(Event, base.append)
    sub_a.unsubscribe()
    event = Started("x")
    stream.publish(event)
    assert a == []
    assert b == [event]
    assert base == [event]


def test_the_context_manager_form_unsubscribes_on_exit() -> None:
    stream = EventStream()
    got: list[Any] = []
    with stream.subscribe(Event, got.append) as sub:
        assert isinstance(sub, Subscription)
        stream.publish(Event("inside"))
        assert stream.has_subscribers(Event)
    assert not sub.active
    stream.publish(Event("outside"))
    assert got == [Event("inside")]
    assert not stream.has_subscribers(Event)


def test_the_context_manager_form_unsubscribes_when_the_block_raises() -> None:
    stream = EventStream()
    got: list[Any] = []
    with pytest.raises(KeyError), stream.subscribe(Event, got.append):
        raise KeyError("boom")
    stream.publish(Event("after"))
    assert got == []


def test_a_handler_unsubscribed_by_an_earlier_handler_during_publish_is_skipped() -> None:
    stream = EventStream()
    got: list[str] = []
    subs: list[Subscription[Any]] = []

    def first(_e: Event) -> None:
        got.append("first")
        subs[0].unsubscribe()

    stream.subscribe(Event, first)
    subs.append(stream.subscribe(Event, lambda _e: got.append("second")))
    stream.publish(Event("x"))
    assert got == ["first"]


def test_a_handler_subscribed_after_a_publish_gets_later_events() -> None:
    stream = EventStream()
    stream.publish(Started("nobody listens"))  # caches "no handlers" for Started
    got: list[Any] = []
    stream.subscribe(Event, got.append)
    stream.publish(Started("now"))
    assert got == [Started("now")]


# ---- failing handlers -----------------------------------------------------------------


def test_a_raising_handler_is_logged_and_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    stream = EventStream()
    got: list[str] = []

    def bad(_e: Event) -> None:
        raise ValueError("handler bug")

    stream.subscribe(Event, lambda _e: got.append("before"))
    stream.subscribe(Event, bad)
    stream.subscribe(Event, lambda _e: got.append("after"))
    stream.subscribe(object, lambda _e: got.append("base"))
    with caplog.at_level(logging.ERROR, logger="nexus.core.events"):
        stream.publish(Event("x"))  # does not raise to the publisher
    assert got == ["before", "after", "base"]
    errors = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], ValueError)]
    assert len(errors) == 1
    assert errors[0].levelno == logging.ERROR
    assert errors[0].name == "nexus.core.events"
    # the failing handler stays subscribed and the stream keeps working
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="nexus.core.events"):
        stream.publish(Event("y"))
    assert got[3:] == ["before", "after", "base"]
    assert len([r for r in caplog.records if r.exc_info]) == 1


# ---- has_subscribers, publish with nobody listening, bad subscriptions -------------------


def test_has_subscribers_follows_subscriptions_and_base_classes() -> None:
    stream = EventStream()
    assert not stream.has_subscribers(Event)
    assert not stream.has_subscribers(Started)
    sub = stream.subscribe(Event, lambda _e: None)
    assert stream.has_subscribers(Event)
    assert stream.has_subscribers(Started), "a base-class subscriber listens to subclasses"
    assert not stream.has_subscribers(Other)
    sub.unsubscribe()
    assert not stream.has_subscribers(Event)
    assert not stream.has_subscribers(Started)


def test_has_subscribers_for_a_subclass_only_subscription() -> None:
    stream = EventStream()
    stream.subscribe(Started, lambda _e: None)
    assert stream.has_subscribers(Started)
    assert not stream.has_subscribers(Event)
    assert not stream.has_subscribers(Stopped)


def test_publish_with_no_subscribers_is_fine_and_counted() -> None:
    stream = EventStream()
    assert stream.published == 0
    stream.publish(Event("nobody"))
    stream.publish(None)
    stream.publish(Other())
    assert stream.published == 3


@pytest.mark.parametrize("not_a_class", [Event("instance"), "Event", None, 3, [Event]])
def test_subscribe_with_a_non_class_raises_type_error(not_a_class: Any) -> None:
    stream = EventStream()
    with pytest.raises(TypeError, match="event class"):
        stream.subscribe(not_a_class, lambda _e: None)
    stream.publish(Event("x"))
    assert not stream.has_subscribers(object)


def test_streams_are_independent() -> None:
    a, b = EventStream(), EventStream()
    got: list[Any] = []
    a.subscribe(Event, got.append)
    b.publish(Event("elsewhere"))
    assert got == []
    assert b.published == 1
    assert a.published == 0
