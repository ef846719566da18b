"""The head's REST/JSON ManagementPort (aiohttp, imported only when the port is on).

``GET /api/v1/status``, ``GET /api/v1/list?kind=actors&filter=state=alive&limit=50``
(read-only commands take their arguments in the query), ``POST /api/v1/kill``
with a JSON object body (every command may be posted); ``GET /metrics``: the
cluster's Prometheus metrics, every node's (:mod:`.scrape`). Every request carries
``Authorization: Bearer <token>``: the token that ``nexus start --head`` wrote
to ``management.json`` in the head's folder (mode 0600), compared in constant
time; a request without it is answered 401, with a wrong one 403, and both are
counted. A malformed request (not JSON, not an object, an unknown argument, a
bad value) is answered 400 with a message saying what was expected; an
unknown command 404; a body over 1 MiB 413. No answer carries a traceback:
an unexpected failure is answered 500 with one line, and the traceback goes
to the head's log. The port binds to loopback unless told otherwise.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .port import SERIALIZERS, CommandError, Commands

__all__ = ["RestPort"]

MAX_BODY = 1 << 20


class RestPort:
    """The REST port on ``bind``:``port`` (0: any free one; ``self.port`` says which), serving ``commands``."""

    name = "rest"
    serializer = SERIALIZERS["json"]

    def __init__(
        self,
        commands: Commands,
        token: str,
        bind: str = "127.0.0.1",
        port: int = 0,
        log: Callable[[str], None] = print,
        metrics: Any = None,
    ) -> None:
        if len(token) < 32:
            raise ValueError("the management token is too short to be a secret (at least 32 characters)")
        self.commands, self.token, self.log, self.metrics = commands, token.encode(), log, metrics
        self.counts = {"served": 0, "unauthorized": 0, "forbidden": 0, "malformed": 0, "failed": 0}
        commands.ports[self.name] = self.counts  # (status shows them)
        self.loop = asyncio.new_event_loop()
        self.runner: web.AppRunner | None = None
        started: list[BaseException | int] = []
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                started.append(self.loop.run_until_complete(self._start(bind, port)))
            except BaseException as exc:  # (the port is taken, the address is not this host's: said by the caller)
                started.append(exc)
            ready.set()
            if isinstance(started[0], int):
                self.loop.run_forever()
            self.loop.close()

        self.thread = threading.Thread(target=serve, name="nexus-management", daemon=True)
        self.thread.start()
        ready.wait(30)
        if not started or not isinstance(started[0], int):
            why = started[0] if started else "it did not start within 30 s"
            raise OSError(f"the management port cannot listen on {bind}:{port}: {why}")
        self.bind, self.port = bind, started[0]

    async def _start(self, bind: str, port: int) -> int:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._guard])
        app.router.add_route("*", "/api/v1/{command}", self._command)
        app.router.add_route("GET", "/metrics", self._metrics)
        app.router.add_route("*", "/{tail:.*}", self._nowhere)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, bind, port, reuse_address=False)
        await site.start()
        addresses = self.runner.addresses
        return int(addresses[0][1]) if addresses else port

    def close(self) -> None:
        if self.loop.is_closed():
            return

        async def stop() -> None:
            if self.runner is not None:
                await self.runner.cleanup()
            self.loop.stop()

        asyncio.run_coroutine_threadsafe(stop(), self.loop)
        self.thread.join(10)

    # -- requests ---------------------------------------------------------------------------------------------

    def _answer(self, status: int, body: dict[str, Any]) -> web.Response:
        return web.Response(status=status, body=self.serializer.dumps(body), content_type=self.serializer.content_type)

    def _error(self, status: int, message: str) -> web.Response:
        return self._answer(status, {"ok": False, "error": {"status": status, "message": message}})

    @web.middleware
    async def _guard(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        """Authenticate first (nothing is read of a request that is not), then answer every failure as JSON."""
        given = request.headers.get("Authorization", "")
        scheme, _, token = given.partition(" ")
        if not given:
            self.counts["unauthorized"] += 1
            return self._error(401, "no token: send 'Authorization: Bearer <token>' (the head's management.json file)")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.token):
            self.counts["forbidden"] += 1
            return self._error(403, "the token is wrong: use the one in the head's management.json file")
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except CommandError as exc:
            self.counts["malformed"] += 1
            return self._error(exc.status, str(exc))
        except web.HTTPException as exc:  # (aiohttp's own: a body too large, a method not allowed)
            self.counts["malformed"] += 1
            return self._error(exc.status, exc.reason)
        except Exception as exc:
            self.counts["failed"] += 1
            self.log(f"nexus head: the management port failed on {request.method} {request.path}:\n{traceback.format_exc()}")
            return self._error(500, f"the head failed to answer ({type(exc).__name__}); its log says why")

    async def _nowhere(self, request: web.Request) -> web.StreamResponse:
        raise CommandError(404, f"no such path {request.path!r}: commands are at /api/v1/<command> ({', '.join(self.commands.table)})")

    async def _metrics(self, _request: web.Request) -> web.StreamResponse:
        if self.metrics is None:
            raise CommandError(404, "this port serves no metrics")
        try:
            text = await asyncio.get_running_loop().run_in_executor(None, self.metrics.render)
        except CommandError as exc:  # (none to serve: no prometheus-client, no events; not a malformed request)
            return self._error(exc.status, str(exc))
        self.counts["served"] += 1
        return web.Response(body=text, headers={"Content-Type": self.metrics.content_type})

    async def _command(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["command"]
        if request.method == "GET":
            if name in self.commands.table and name not in self.commands.READ_ONLY:
                raise CommandError(405, f"{name!r} changes the cluster: POST it, with a JSON body")
            args = _query_args(request)
        elif request.method == "POST":
            args = await _body_args(request)
        else:
            raise CommandError(405, f"{request.method} is not a method of the management port: GET or POST")
        result = await asyncio.get_running_loop().run_in_executor(None, self.commands.run, name, args)
        self.counts["served"] += 1
        if isinstance(result, bytes):  # (a bundle: nexus dump)
            disposition = f'attachment; filename="nexus-{name}-{time.strftime("%Y%m%d-%H%M%S")}.tar.gz"'
            return web.Response(body=result, content_type="application/gzip", headers={"Content-Disposition": disposition})
        return self._answer(200, {"ok": True, "result": result})


def _query_args(request: web.Request) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        if key == "filter":
            args["filters"] = list(values)
        elif key == "brief":
            text = values[-1].lower()
            if text not in ("true", "false", "1", "0"):
                raise CommandError(400, f"brief is true or false, not {values[-1]!r}")
            args[key] = text in ("true", "1")
        elif key == "fields":
            args["fields"] = [f.strip() for v in values for f in v.split(",")]
        elif key in ("limit", "tail", "since"):
            try:
                args[key] = int(values[-1])
            except ValueError:
                raise CommandError(400, f"{key} is a whole number, not {values[-1]!r}") from None
        else:
            args[key] = values[-1]
    return args


async def _body_args(request: web.Request) -> Any:
    data = await request.read()
    if not data.strip():
        return {}
    try:
        args = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CommandError(400, f"the body is not JSON ({exc}): send an object of the command's arguments") from None
    if not isinstance(args, dict):
        raise CommandError(400, f"the body is an object of the command's arguments, not {type(args).__name__}")
    return args
