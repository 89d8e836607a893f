"""The FastAPI application: ``create_app(settings)`` wires settings, database, clock and routers."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp

from notiflow import __version__
from notiflow.auth.dependencies import require_token
from notiflow.clients.endpoints import import_router as clients_import_router
from notiflow.clients.endpoints import router as clients_router
from notiflow.config import Settings
from notiflow.core.body_limit import TooLargeAsJson, too_large_handler
from notiflow.core.clock import Clock, utcnow
from notiflow.core.errors import install_error_handlers
from notiflow.db.engine import create_engine, create_sessionmaker
from notiflow.delivery.engine import Engine
from notiflow.delivery.signal import EngineSignal
from notiflow.mailings.endpoints import router as mailings_router
from notiflow.messages.endpoints import router as messages_router
from notiflow.sandbox.server import FaultConfig, Sandbox
from notiflow.stats.endpoints import router as stats_router

log = logging.getLogger("notiflow")

DESCRIPTION = """
Notiflow keeps an address book of clients, runs mailings (campaigns) to the clients that match a
filter, sends every message through an external HTTP provider between the mailing's start and end
time, and reports statistics per mailing and per status.

**Authentication.** Every `/api/v1` endpoint needs `Authorization: Bearer <token>`. Tokens come
from `NOTIFLOW_API_TOKENS` (comma-separated) or are made by `notiflow token create`. A missing or
wrong token is `401`.

**Errors.** Every 4xx answer has the body `{"detail": "...", "errors": [{"field", "message",
"type"}]}`: `404` unknown id, `409` conflict (duplicate phone, edit of a frozen field), `413` body
too large, `415` wrong content type, `422` invalid input naming the field.

**Body size.** A request body may be at most `NOTIFLOW_REQUEST_MAX_BYTES` (1 MiB by default); the
import's, `NOTIFLOW_IMPORT_MAX_BYTES` (64 MiB). A larger one is refused with `413`, never read
past the limit.

**Time.** Timestamps are ISO 8601; input without an offset is UTC; output is UTC with `Z`.

**Lists** take `limit` (default 100, at most 1000) and `offset`, and answer
`{"items", "total", "limit", "offset"}`.
"""

TAGS = [
    {"name": "clients", "description": "The address book."},
    {"name": "mailings", "description": "Campaigns, their messages and statistics."},
    {"name": "messages", "description": "One message per (mailing, client)."},
    {"name": "stats", "description": "Statistics over every mailing."},
    {"name": "service", "description": "Health of the service."},
]


class EngineHealth(BaseModel):
    running: bool = Field(description="Whether the delivery engine runs in this process.")
    worker: str | None = Field(default=None, description="This engine's name in leases and logs.")
    provider: str = Field(
        description="`ok`, `unauthorized` (401/403: sending paused), `circuit_open`, "
        "`circuit_half_open`, `starting`, or `not_here` when this process runs no engine."
    )
    provider_error: str | None = Field(default=None, description="The provider's last problem.")
    error: str | None = Field(
        default=None, description="Why the engine's last step failed, while it keeps failing."
    )
    in_flight: int = Field(default=0, description="Requests to the provider in flight.")
    sent: int = Field(default=0, description="Messages this engine has sent since it started.")


class Health(BaseModel):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "status": "ok",
                    "version": __version__,
                    "database": "ok",
                    "engine": {
                        "running": True,
                        "worker": "host-4242-1a2b3c",
                        "provider": "ok",
                        "provider_error": None,
                        "error": None,
                        "in_flight": 12,
                        "sent": 1000,
                    },
                }
            ]
        }
    }

    status: str = Field(description="`ok`, or `degraded` when a part is failing.", examples=["ok"])
    version: str = Field(examples=[__version__])
    database: str = Field(description="`ok` or the error.", examples=["ok"])
    engine: EngineHealth


async def _start_delivery(app: FastAPI, settings: Settings, clock: Clock) -> Sandbox | None:
    """Start the delivery engine in this process; with no provider configured, the sandbox."""
    url, token, sandbox = settings.provider_url, settings.provider_token, None
    if url is None:
        token = secrets.token_urlsafe(16)
        sandbox = Sandbox(FaultConfig(token=token))
        url = await sandbox.start("127.0.0.1", 0)
        log.warning(
            "NOTIFLOW_PROVIDER_URL is not set: messages go to the built-in sandbox provider at %s "
            "(nothing leaves this machine). Set NOTIFLOW_PROVIDER_URL and "
            "NOTIFLOW_PROVIDER_TOKEN to send for real.",
            url,
        )
    delivery = Engine(
        settings=settings,
        sessionmaker=app.state.sessionmaker,
        provider_url=url,
        provider_token=token,
        signal=app.state.engine_signal,
        clock=clock,
    )
    await delivery.start()
    app.state.engine = delivery
    app.state.sandbox = sandbox
    return sandbox


class _App(FastAPI):
    """FastAPI with :class:`TooLargeAsJson` around its whole middleware stack, outside the body
    limiter, whose own plain-text 413 (a Content-Length over the limit) it gives our error shape."""

    def build_middleware_stack(self) -> ASGIApp:
        return TooLargeAsJson(super().build_middleware_stack())


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock = utcnow,
    engine: AsyncEngine | None = None,
    run_engine: bool = False,
) -> FastAPI:
    """The API; with ``run_engine`` the delivery engine runs in the same process (``serve``)."""
    settings = settings or Settings()
    own_engine = engine is None
    db_engine = engine or create_engine(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sandbox = await _start_delivery(app, settings, clock) if run_engine else None
        try:
            yield
        finally:
            if app.state.engine is not None:
                await app.state.engine.stop()
            if sandbox is not None:
                await sandbox.stop()
            if own_engine:
                await db_engine.dispose()

    app = _App(
        title="Notiflow",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        # Every body is limited while it is read, and a Content-Length over the limit is refused
        # before a byte of it is, whatever the token (see notiflow.core.body_limit).
        max_body_size=settings.request_max_bytes,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.db_engine = db_engine
    app.state.sessionmaker = create_sessionmaker(db_engine)
    app.state.engine_signal = EngineSignal()
    app.state.engine = None
    app.state.sandbox = None
    app.state.run_engine = run_engine
    install_error_handlers(app)
    app.add_exception_handler(status.HTTP_413_CONTENT_TOO_LARGE, too_large_handler)

    api = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token)])
    api.include_router(clients_router)
    api.include_router(clients_import_router, max_body_size=settings.import_max_bytes)
    api.include_router(mailings_router)
    api.include_router(messages_router)
    api.include_router(stats_router)
    app.include_router(api)

    @app.get(
        "/health",
        response_model=Health,
        tags=["service"],
        summary="Health check (no token needed)",
        responses={503: {"model": Health, "description": "A part of the service is failing."}},
    )
    async def health(request: Request) -> Any:
        database = "ok"
        try:
            async with request.app.state.db_engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:  # the health check reports any failure instead of raising
            database = f"error: {type(exc).__name__}"
        delivery = request.app.state.engine
        if delivery is not None:
            engine = EngineHealth(**delivery.health())
        else:
            engine = EngineHealth(running=False, provider="not_here")
        healthy = database == "ok" and engine.provider in ("ok", "not_here", "starting")
        if request.app.state.run_engine and (not engine.running or engine.error):
            healthy = False
        body = Health(
            status="ok" if healthy else "degraded",
            version=__version__,
            database=database,
            engine=engine,
        )
        return JSONResponse(body.model_dump(), status_code=200 if database == "ok" else 503)

    return app
