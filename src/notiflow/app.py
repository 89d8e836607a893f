"""The FastAPI application: ``create_app(settings)`` wires settings, database, clock and routers."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, status
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp

from notiflow import __version__
from notiflow.admin.endpoints import install as install_admin_ui
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
from notiflow.health.endpoints import router as health_router
from notiflow.mailings.endpoints import router as mailings_router
from notiflow.messages.endpoints import router as messages_router
from notiflow.metrics import Metrics, bind
from notiflow.metrics.endpoints import router as metrics_router
from notiflow.metrics.http import HttpMetricsMiddleware
from notiflow.sandbox.server import FaultConfig, Sandbox
from notiflow.stats.endpoints import router as stats_router
from notiflow.web.endpoints import router as web_router
from notiflow.web.static import STATIC_NAME, STATIC_PATH, static_files
from notiflow.webhooks.endpoints import router as webhooks_router
from notiflow.workers.endpoints import router as workers_router
from notiflow.workers.watch import WorkerWatch

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
    {
        "name": "workers",
        "description": "The delivery engines alive, from the heartbeat each one writes.",
    },
    {"name": "tokens", "description": "Stored API tokens and their roles (admin)."},
    {"name": "audit", "description": "Who wrote what, when (admin)."},
    {"name": "service", "description": "Health of the service."},
]


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
        metrics=app.state.metrics,
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
    and the request metrics around that, so that they count that 413 too; and
    :class:`RequestContext` outside everything, so every line a request logs (its errors too)
    carries its request_id, and every answer its X-Request-ID."""

    def build_middleware_stack(self) -> ASGIApp:
        metrics: Metrics = self.state.metrics
        return RequestContext(
            HttpMetricsMiddleware(
                TooLargeAsJson(super().build_middleware_stack()),
                metrics=metrics.http(),
                index=lambda: self.state.route_index,
                routes=self.routes,
            )
        )

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
        # /docs and /redoc are served from vendored assets by notiflow.web, not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.db_engine = db_engine
    app.state.sessionmaker = create_sessionmaker(db_engine)
    # This process's metrics (docs/metrics.md); outcomes written through its sessions count there.
    app.state.metrics = metrics = Metrics()
    bind(app.state.sessionmaker, metrics)
    metrics.http()
    metrics.database(app.state.sessionmaker)
    app.state.engine_signal = EngineSignal()
    app.state.engine = None
    app.state.sandbox = None
    app.state.run_engine = run_engine
    app.state.worker_watch = WorkerWatch(
        clock=clock,
        local_engine_running=lambda: app.state.engine is not None and app.state.engine.running,
    )
    install_error_handlers(app)
    app.add_exception_handler(status.HTTP_413_CONTENT_TOO_LARGE, too_large_handler)

    api = APIRouter(prefix=API_PREFIX, dependencies=api_dependencies())
    api.include_router(clients_router)
    api.include_router(clients_import_router, max_body_size=settings.import_max_bytes)
    api.include_router(mailings_router)
    api.include_router(messages_router)
    api.include_router(stats_router)
    api.include_router(webhooks_router)
    api.include_router(workers_router)
    api.include_router(tokens_router)
    api.include_router(audit_router)
    app.include_router(api)
    app.include_router(health_router)
    app.include_router(metrics_router)
    app.include_router(web_router)
    app.mount(STATIC_PATH, static_files(), name=STATIC_NAME)
    install_admin_ui(app)  # /ui: the admin UI, its session cookie and its HTML error pages
    app.state.route_index = RouteIndex(app.routes)

    return app
