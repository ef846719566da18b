"""Middleware chains: receive filters, send filters and error hooks, per Props and per system."""

from __future__ import annotations

from typing import Any

import pytest

from nexus.core import Actor, ActorRef, Context, FailureEvent, Props, SystemConfig, compose

from ..conftest import RUNTIMES


class Echo(Actor):
    def receive(self, ctx: Context, message: Any) -> None:
        ctx.respond(message)


def tagging(tag: str, log: list[str]) -> Any:
    def middleware(next_handler: Any) -> Any:
        def handler(ctx: Context, message: Any) -> Any:
            log.append(f"{tag}>")
            result = next_handler(ctx, message if not isinstance(message, str) else f"{message}+{tag}")
            log.append(f"<{tag}")
            return result

        return handler

    return middleware


def test_receive_filters_wrap_in_order_system_outside_props_inside() -> None:
    log: list[str] = []
    rt = RUNTIMES["deterministic"](SystemConfig(receive_filters=(tagging("sys", log),)))
    props = Props.from_class(Echo).with_receive_filters(tagging("p1", log), tagging("p2", log))
    ref = rt.system.spawn(props)
    assert ref.ask("m").result(1) == "m+sys+p1+p2"
    assert log == ["sys>", "p1>", "p2>", "<p2", "<p1", "<sys"]
    rt.system.shutdown()


def test_a_receive_filter_can_drop_messages_and_survives_become() -> None:
    def drop_secrets(next_handler: Any) -> Any:
        def handler(ctx: Context, message: Any) -> Any:
            if message == "secret":
                return None
            return next_handler(ctx, message)

        return handler

    class Shifty(Actor):
        def receive(self, ctx: Context, message: Any) -> None:
            if message == "shift":
                ctx.become(lambda c, m: c.respond(f"shifted {m}"))
            else:
                ctx.respond(message)

    rt = RUNTIMES["deterministic"]()
    ref = rt.system.spawn(Props.from_class(Shifty).with_receive_filters(drop_secrets))
    from nexus.core import AskTimeoutError

    secret = ref.ask("secret", timeout=1)
    rt.settle()
    assert rt.clock is not None
    rt.clock.advance(2)
    with pytest.raises(AskTimeoutError):
        secret.result(1)
    ref.tell("shift")
    assert ref.ask("x").result(1) == "shifted x"
    late = ref.ask("secret", timeout=1)
    rt.settle()
    rt.clock.advance(2)
    with pytest.raises(AskTimeoutError):
        late.result(1)
    rt.system.shutdown()


def test_send_filters_per_props_see_the_actors_sends() -> None:
    sent: list[tuple[Any, Any, Any]] = []

    def record(next_handler: Any) -> Any:
        def handler(sender: ActorRef | None, target: ActorRef, message: Any) -> None:
            sent.append((sender, target, message))
            next_handler(sender, target, f"{message}!" if isinstance(message, str) else message)

        return handler

    class Relay(Actor):
        def __init__(self, target: ActorRef) -> None:
            self.target = target
            self.replies: list[Any] = []

        def receive(self, ctx: Context, message: Any) -> None:
            if ctx.sender == self.target:
                self.replies.append(message)
            elif message == "replies":
                ctx.respond(self.replies)
            else:
                ctx.request(self.target, message)
                ctx.respond("relayed")

    rt = RUNTIMES["threads"]()
    echo = rt.system.spawn(Echo)
    relay = rt.system.spawn(Props.from_class(Relay, echo).with_send_filters(record))
    assert relay.ask("hi", timeout=5).result(5) == "relayed!"  # the reply to the asker passed the filter
    rt.wait_until(lambda: relay.ask("replies", timeout=5).result(5) == ["hi!"])  # echo got the filtered message
    assert sent[0] == (relay, echo, "hi")
    assert sent[1][0] == relay and sent[1][2] == "relayed"
    assert all(s[0] == relay for s in sent) and sent[-1][2] == ["hi!"]  # echo's own reply is not relay's send
    rt.system.shutdown()


def test_system_send_filters_see_every_tell() -> None:
    seen: list[Any] = []

    def spy(next_handler: Any) -> Any:
        def handler(sender: ActorRef | None, target: ActorRef, message: Any) -> None:
            seen.append(message)
            next_handler(sender, target, message)

        return handler

    rt = RUNTIMES["deterministic"](SystemConfig(send_filters=(spy,)))
    ref = rt.system.spawn(Echo)
    ref.tell("plain tell")
    assert ref.ask("question").result(1) == "question"
    assert seen == ["plain tell", "question", "question"]  # the reply is a send too
    rt.system.shutdown()


def test_error_hooks_per_props_and_system() -> None:
    order: list[str] = []

    def hook(tag: str) -> Any:
        def middleware(next_handler: Any) -> Any:
            def handler(event: FailureEvent) -> None:
                order.append(f"{tag}:{type(event.reason).__name__}:{event.unhandled}")
                next_handler(event)

            return handler

        return middleware

    class Failing(Actor):
        def receive(self, ctx: Context, message: Any) -> None:
            raise LookupError(message)

    rt = RUNTIMES["deterministic"](SystemConfig(error_hooks=(hook("system"),)))
    ref = rt.system.spawn(Props.from_class(Failing).with_error_hooks(hook("props")))
    ref.tell("x")
    rt.settle()
    # the actor's own failure (props hooks, then system hooks), then the root's unhandled report
    assert order == ["props:LookupError:False", "system:LookupError:False", "system:LookupError:True"]
    rt.system.shutdown()


def test_compose_checks_what_middleware_returns() -> None:
    with pytest.raises(TypeError, match="must return a handler"):
        compose([lambda nxt: None], lambda ctx, m: None)
