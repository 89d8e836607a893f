"""The sandbox provider: answers like the real send API and misbehaves on demand.

``POST /{anything}/{id}`` with ``{"id", "phone", "text"}`` and the bearer token answers
``{"code": 0, "message": "OK"}`` — or, by the configured shares, a 5xx, a garbage 200, a hang past
the client's timeout, a dropped connection, a 4xx or a 429. An outage refuses connections
altogether. Everything it receives is logged; tests and benchmarks read the log.

Control endpoints (no token): ``GET/PUT /_sandbox/config``, ``GET/DELETE /_sandbox/log``,
``GET /_sandbox/stats``, ``POST /_sandbox/outage`` ``{"seconds": n}``. ``PUT /_sandbox/config``
may set the token, but the config is shown with ``"token_set": true|false`` instead of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from aiohttp import web

log = logging.getLogger("notiflow.sandbox")

FAULTS = ("error_rate", "garbage_rate", "hang_rate", "drop_rate", "reject_rate", "throttle_rate")


@dataclass
class FaultConfig:
    token: str = ""  # empty: any token is accepted (none is required)
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0  # 500/502/503
    garbage_rate: float = 0.0  # 200 with a body that is not {"code": 0}
    hang_rate: float = 0.0  # no answer for hang_seconds
    drop_rate: float = 0.0  # connection closed without an answer
    reject_rate: float = 0.0  # 400 with a JSON body
    throttle_rate: float = 0.0  # 429 with Retry-After
    retry_after_seconds: float = 1.0
    hang_seconds: float = 3600.0
    log_limit: int = 2_000_000

    def update(self, changes: dict[str, Any]) -> None:
        """Apply ``changes`` all at once, or none of them if any is invalid."""
        candidate = replace(self)
        candidate._apply(changes)
        for name in (f.name for f in fields(self)):
            setattr(self, name, getattr(candidate, name))

    def _apply(self, changes: dict[str, Any]) -> None:
        known = {f.name: f.type for f in fields(self)}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown setting {key!r}")
            if key == "token":
                if not isinstance(value, str):
                    raise ValueError("token must be a string")
            elif key == "log_limit":
                if not isinstance(value, int) or value < 0:
                    raise ValueError("log_limit must be a non-negative integer")
            else:
                if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"{key} must be a non-negative number")
                if key in FAULTS and value > 1:
                    raise ValueError(f"{key} is a share between 0 and 1")
            setattr(self, key, value)
        if sum(getattr(self, name) for name in FAULTS) > 1:
            raise ValueError("the fault shares add up to more than 1")


@dataclass
class Received:
    id: int | None
    phone: int | None
    text: str | None
    at: float  # unix time when the request arrived
    outcome: str  # ok · error · garbage · hang · drop · reject · throttle · unauthorized · bad
    # Whether the answer went out (True), or the client went away first (False): an ``ok`` that
    # was not answered is a message the provider took while the client saw a timeout. None while
    # the request is under way.
    answered: bool | None = None


class Sandbox:
    """The emulator; ``start()`` it on a host and port, ``stop()`` it, read ``received``."""

    def __init__(self, config: FaultConfig | None = None, *, seed: int | None = None) -> None:
        self.config = config or FaultConfig()
        self.received: list[Received] = []
        self._rng = random.Random(seed)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._host = "127.0.0.1"
        self.port = 0
        self._outage_task: asyncio.Task[None] | None = None
        self._down = False

    # --- HTTP ---------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_get("/_sandbox/config", self._get_config)
        app.router.add_put("/_sandbox/config", self._put_config)
        app.router.add_get("/_sandbox/log", self._get_log)
        app.router.add_delete("/_sandbox/log", self._clear_log)
        app.router.add_get("/_sandbox/stats", self._stats)
        app.router.add_post("/_sandbox/outage", self._outage)
        app.router.add_post("/{tail:.*}", self._send)
        return app

    def _draw(self) -> str:
        roll = self._rng.random()
        for name in FAULTS:
            share = getattr(self.config, name)
            if roll < share:
                return name.removesuffix("_rate")
            roll -= share
        return "ok"

    def _log(self, entry: Received) -> None:
        if len(self.received) < self.config.log_limit:
            self.received.append(entry)

    async def _send(self, request: web.Request) -> web.StreamResponse:
        arrived = time.time()
        if self._down:  # a kept-alive connection during an outage: cut it
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        config = self.config
        delay = config.latency_ms + (
            self._rng.uniform(-config.jitter_ms, config.jitter_ms) if config.jitter_ms else 0.0
        )
        if config.token and request.headers.get("Authorization") != f"Bearer {config.token}":
            entry = Received(None, None, None, arrived, "unauthorized")
            fault = "unauthorized"
        else:
            entry, fault = await self._accept(request, arrived)
        self._log(entry)
        try:
            if delay > 0:
                await asyncio.sleep(delay / 1000)
            response = await self._answer(request, fault)
        except asyncio.CancelledError:
            entry.answered = False  # the client went away (or was cut off) before the answer
            raise
        entry.answered = True
        return response

    async def _accept(self, request: web.Request, arrived: float) -> tuple[Received, str]:
        """Read a request with a good token: what it says, and what is to become of it."""
        try:
            body = await request.json(loads=json.loads)
            message_id, phone, text = body["id"], body["phone"], body["text"]
            path_id = int(request.match_info["tail"].rstrip("/").rsplit("/", 1)[-1])
            valid = (
                isinstance(message_id, int)
                and isinstance(phone, int)
                and isinstance(text, str)
                and message_id == path_id
            )
        except (ValueError, KeyError, TypeError):
            valid = False
        if not valid:
            return Received(None, None, None, arrived, "bad"), "bad"
        fault = self._draw()
        return Received(message_id, phone, text, arrived, fault), fault

    async def _answer(self, request: web.Request, fault: str) -> web.StreamResponse:
        if fault == "ok":
            return web.json_response({"code": 0, "message": "OK"})
        if fault == "unauthorized":
            return web.json_response({"code": 401, "message": "bad token"}, status=401)
        if fault == "bad":
            return web.json_response({"code": 400, "message": "malformed request"}, status=400)
        if fault == "error":
            status = self._rng.choice((500, 502, 503))
            return web.Response(status=status, text="provider is unwell")
        if fault == "garbage":
            body_text = self._rng.choice(("OK", '{"code": 1, "message": "busy"}', "<html>", ""))
            return web.Response(status=200, text=body_text, content_type="application/json")
        if fault == "hang":
            await asyncio.sleep(self.config.hang_seconds)
            return web.json_response({"code": 0, "message": "OK (too late)"})
        if fault == "drop":
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if fault == "reject":
            return web.json_response({"code": 400, "message": "rejected"}, status=400)
        return web.json_response(
            {"code": 429, "message": "slow down"},
            status=429,
            headers={"Retry-After": str(int(self.config.retry_after_seconds))},
        )

    def _shown_config(self) -> dict[str, Any]:
        """The config as the control endpoints show it: whether a token is set, never the token."""
        shown = asdict(self.config)
        shown["token_set"] = bool(shown.pop("token"))
        return shown

    async def _get_config(self, _request: web.Request) -> web.Response:
        return web.json_response(self._shown_config())

    async def _put_config(self, request: web.Request) -> web.Response:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("send a JSON object of settings")
            self.config.update(changes)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self._shown_config())

    async def _get_log(self, request: web.Request) -> web.Response:
        since = float(request.query.get("since", "0") or 0)
        entries = [asdict(e) for e in self.received if e.at >= since]
        return web.json_response(entries)

    async def _clear_log(self, _request: web.Request) -> web.Response:
        self.received.clear()
        return web.Response(status=204)

    async def _stats(self, _request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _outage(self, request: web.Request) -> web.Response:
        try:
            seconds = float((await request.json())["seconds"])
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'send {"seconds": n}'}, status=400)
        await self.begin_outage(seconds)  # new connections are refused once this answers
        return web.json_response({"outage_seconds": seconds})

    # --- control ------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        outcomes: dict[str, int] = {}
        for entry in self.received:
            outcomes[entry.outcome] = outcomes.get(entry.outcome, 0) + 1
        accepted = [e.id for e in self.received if e.outcome == "ok"]
        return {
            "requests": len(self.received),
            "outcomes": outcomes,
            "accepted": len(accepted),
            "accepted_unique": len(set(accepted)),
        }

    def accepted_ids(self) -> list[int]:
        return [e.id for e in self.received if e.outcome == "ok" and e.id is not None]

    async def begin_outage(self, seconds: float) -> None:
        """Refuse connections for ``seconds``: the listening socket is closed (when this returns,
        it is), then reopened."""
        if self._outage_task is not None and not self._outage_task.done():
            self._outage_task.cancel()  # the new outage replaces it
            with contextlib.suppress(asyncio.CancelledError):
                await self._outage_task
        self._down = True
        if self._site is not None:
            await self._site.stop()
            self._site = None
        log.info("sandbox outage: refusing connections", extra={"seconds": seconds})
        self._outage_task = asyncio.ensure_future(self._end_outage(seconds))

    async def _end_outage(self, seconds: float) -> None:
        try:
            await asyncio.sleep(seconds)
        finally:
            self._down = False
            if self._runner is not None and self._site is None:
                await self._listen()
            log.info("sandbox outage over")

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self._host, self.port, reuse_address=True)
        await self._site.start()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start listening; return the base URL to give Notiflow as NOTIFLOW_PROVIDER_URL."""
        self._runner = web.AppRunner(self.app(), access_log=None, handler_cancellation=True)
        await self._runner.setup()
        self._host = host
        self.port = port
        self._site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await self._site.start()
        if port == 0:
            server: Any = self._site._server  # aiohttp has no public accessor for the port
            self.port = int(server.sockets[0].getsockname()[1])
        return f"http://{host}:{self.port}/v1/send"

    async def stop(self) -> None:
        if self._outage_task is not None:
            self._outage_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._outage_task
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
