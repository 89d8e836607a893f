"""The FastAPI application: ``create_app(settings)`` wires settings, database, clock and routers."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp

from notiflow import __version__
from notiflow.audit.endpoints import router as audit_router
from notiflow.audit.recorder import record_writes
from notiflow.auth.dependencies import require_token
from notiflow.auth.endpoints import router as tokens_router
from notiflow.auth.roles import RULE_MARKDOWN, document_roles
from notiflow.clients.endpoints import import_router as clients_import_router
from notiflow.clients.endpoints import router as clients_router
from notiflow.config import Settings
from notiflow.core.body_limit import TooLargeAsJson, too_large_handler
from notiflow.core.clock import Clock, utcnow
from notiflow.core.errors import install_error_handlers
from notiflow.core.request_context import RequestContext, bind_path_ids
from notiflow.core.routes import API_PREFIX, RouteIndex
from notiflow.db.engine import create_engine, create_sessionmaker
from notiflow.delivery.engine import Engine
from notiflow.delivery.signal import EngineSignal
from notiflow.mailings.endpoints import router as mailings_router
from notiflow.messages.endpoints import router as messages_router
from notiflow.sandbox.server import FaultConfig, Sandbox
from notiflow.stats.endpoints import router as stats_router
from notiflow.webhooks.endpoints import router as webhooks_router

log = logging.getLogger("notiflow")

DESCRIPTION = (
    """
Notiflow keeps an address book of clients, runs mailings (campaigns) to the clients that match a
filter, sends every message through an external HTTP provider between the mailing's start and end
time, and reports statistics per mailing and per status.

**Authentication.** Every `/api/v1` endpoint needs `Authorization: Bearer <token>`. Tokens come
from `NOTIFLOW_API_TOKENS` (comma-separated, role `admin`), `NOTIFLOW_API_SEND_TOKENS` (`send`),
`NOTIFLOW_API_READ_TOKENS` (`read`), or are made by `notiflow token create --role …` or
`POST /api/v1/tokens`. A missing or wrong token is `401`.

**Roles.** Each token has a role, and each includes the one before it:
"""
    + RULE_MARKDOWN
    + """
**Audit.** Every write that succeeds is recorded with the token's name, in the same transaction
as the write: `GET /api/v1/audit` (admin).

**Errors.** Every 4xx answer has the body `{"detail": "...", "errors": [{"field", "message",
"type"}]}`: `403` role too low, `404` unknown id, `409` conflict (duplicate phone, edit of a
frozen field), `413` body too large, `415` wrong content type, `422` invalid input naming the
field.

**Body size.** A request body may be at most `NOTIFLOW_REQUEST_MAX_BYTES` (1 MiB by default); the
import's, `NOTIFLOW_IMPORT_MAX_BYTES` (64 MiB). A larger one is refused with `413`, never read
past the limit.

**Request ids.** Every answer carries `X-Request-ID`: the request's own header when it is 1 to
100 printable ASCII characters without spaces, else a generated one. The server's log lines about
the request carry it as `request_id`.

**Time.** Timestamps are ISO 8601; input without an offset is UTC; output is UTC with `Z`.

**Lists** take `limit` (default 100, at most 1000) and `offset`, and answer
`{"items", "total", "limit", "offset"}`.
"""
)

TAGS = [
    {"name": "clients", "description": "The address book."},
    {"name": "mailings", "description": "Campaigns, their messages and statistics."},
    {"name": "messages", "description": "One message per (mailing, client)."},
    {"name": "stats", "description": "Statistics over every mailing."},
    {
        "name": "webhooks",
        "description": "URLs told of mailing and message events, by signed POSTs that are "
        "retried until they succeed (or fail after NOTIFLOW_WEBHOOK_MAX_ATTEMPTS).",
    },
    {"name": "tokens", "description": "Stored API tokens and their roles (admin)."},
    {"name": "audit", "description": "Who wrote what, when (admin)."},
    {"name": "service", "description": "Health of the service."},
]


class EngineHealth(BaseModel):
    running: bool = Field(description="Whether the delivery engine runs in this process.")
    worker: str | None = Field(default=None, description="This engine's name in leases and logs.")
    provider: str = Field(
        description="`ok`, `unauthorized` (401/403: sending paused), `circuit_open`, "
        "`circuit_half_open`, or `not_here` when this process runs no engine."
    )
    provider_error: str | None = Field(default=None, description="The provider's last problem.")
    error: str | None = Field(
        default=None, description="Why a loop of the engine failed, while it keeps failing."
    )
    problems: list[str] = Field(
        default_factory=list,
        description="Why the engine is not doing its work: stopped, or a loop that has completed "
        "no round for `NOTIFLOW_ENGINE_STALL_SECONDS` (blocked, or failing at every try).",
    )
    in_flight: int = Field(default=0, description="Requests to the provider in flight.")
    sent: int = Field(default=0, description="Messages this engine has sent since it started.")


class Health(BaseModel):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "status": "ok",
                    "reason": None,
                    "version": __version__,
                    "database": "ok",
                    "engine": {
                        "running": True,
                        "worker": "host-4242-1a2b3c",
                        "provider": "ok",
                        "provider_error": None,
                        "error": None,
                        "problems": [],
                        "in_flight": 12,
                        "sent": 1000,
                    },
                }
            ]
        }
    }

    status: str = Field(
        description="`ok`; `degraded` when the provider is failing or refusing the token (the "
        "answer is still 200); `failing` when the database is unreachable or the engine of this "
        "process is dead or stalled (the answer is 503).",
        examples=["ok"],
    )
    reason: str | None = Field(default=None, description="Why the status is not `ok`.")
    version: str = Field(examples=[__version__])
    database: str = Field(description="`ok` or the error.", examples=["ok"])
    engine: EngineHealth


HEALTH_DB_TIMEOUT = 5.0  # the health check answers within this even if the database hangs


async def _database_health(request: Request) -> str:
    engine: AsyncEngine = request.app.state.db_engine

    async def probe() -> None:
        async with engine.connect() as connection:
            # Straight to the driver, outside any transaction: on SQLite every transaction
            # takes the write lock first, and the check must not wait for another writer.
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection
            if engine.dialect.name == "sqlite":
                await (await driver.execute("SELECT 1")).close()
            else:
                await driver.fetchval("SELECT 1")

    try:
        await asyncio.wait_for(probe(), HEALTH_DB_TIMEOUT)
    except TimeoutError:
        return f"error: no answer within {HEALTH_DB_TIMEOUT:.0f} s"
    except Exception as exc:  # the health check reports any failure instead of raising
        return f"error: {type(exc).__name__}"
    return "ok"


async def _start_delivery(app: FastAPI, settings: Settings, clock: Clock) -> Sandbox | None:
    """Start the delivery engine in this process; with no provider configured, the sandbox."""
    url, token, sandbox = settings.provider_url, settings.provider_token, None
    if url is None:
        token = secrets.token_urlsafe(16)
        sandbox = Sandbox(FaultConfig(token=token))
        url = await sandbox.start("127.0.0.1", 0)
        log.warning(
            "NOTIFLOW_PROVIDER_URL is not set: messages go to the built-in sandbox provider "
            "(nothing leaves this machine). Set NOTIFLOW_PROVIDER_URL and "
            "NOTIFLOW_PROVIDER_TOKEN to send for real.",
            extra={"provider_url": url},
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


def api_dependencies() -> list[Any]:
    """What every /api/v1 route runs first: the ids of its path bound to the request's log
    context (notiflow.core.request_context), a token whose role allows the route
    (notiflow.auth.roles), then, for a write that succeeds, its audit entry in the request's
    transaction (notiflow.audit.recorder). Routers included under the /api/v1 router get all."""
    return [
        Depends(bind_path_ids),
        Depends(require_token),
        Depends(record_writes, scope="function"),
    ]


class _App(FastAPI):
    """FastAPI with :class:`TooLargeAsJson` around its whole middleware stack, outside the body
    limiter, whose own plain-text 413 (a Content-Length over the limit) it gives our error shape;
    and :class:`RequestContext` outside everything, so every line a request logs (its errors
    too) carries its request_id, and every answer its X-Request-ID."""

    def build_middleware_stack(self) -> ASGIApp:
        return RequestContext(TooLargeAsJson(super().build_middleware_stack()))

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            document_roles(super().openapi(), self.routes)
        return super().openapi()


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

    api = APIRouter(prefix=API_PREFIX, dependencies=api_dependencies())
    api.include_router(clients_router)
    api.include_router(clients_import_router, max_body_size=settings.import_max_bytes)
    api.include_router(mailings_router)
    api.include_router(messages_router)
    api.include_router(stats_router)
    api.include_router(webhooks_router)
    api.include_router(tokens_router)
    api.include_router(audit_router)
    app.include_router(api)
    app.state.route_index = RouteIndex(app.routes)

    @app.get(
        "/health",
        response_model=Health,
        tags=["service"],
        summary="Health check (no token needed)",
        responses={
            503: {
                "model": Health,
                "description": "The database is unreachable, or this process's engine is dead "
                "or stalled.",
            }
        },
    )
    async def health(request: Request) -> Any:
        database = await _database_health(request)
        delivery: Engine | None = request.app.state.engine
        if delivery is not None:
            engine = EngineHealth(**delivery.health())
        else:
            engine = EngineHealth(running=False, provider="not_here")
        status, reason = "ok", None
        if database != "ok":
            status, reason = "failing", f"the database is unreachable ({database})"
        elif engine.problems or (request.app.state.run_engine and delivery is None):
            status = "failing"
            reason = "; ".join(engine.problems) or "the delivery engine has not started"
        elif engine.provider not in ("ok", "not_here"):
            status = "degraded"
            reason = f"the provider: {engine.provider} ({engine.provider_error})"
        body = Health(
            status=status, reason=reason, version=__version__, database=database, engine=engine
        )
        return JSONResponse(body.model_dump(), status_code=503 if status == "failing" else 200)

    return app
