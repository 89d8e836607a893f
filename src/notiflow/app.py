"""The FastAPI application: ``create_app(settings)`` wires settings, database, clock and routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from notiflow import __version__
from notiflow.auth.dependencies import require_token
from notiflow.clients.endpoints import router as clients_router
from notiflow.config import Settings
from notiflow.core.clock import Clock, utcnow
from notiflow.core.errors import install_error_handlers
from notiflow.db.engine import create_engine, create_sessionmaker
from notiflow.delivery.signal import EngineSignal
from notiflow.mailings.endpoints import router as mailings_router
from notiflow.messages.endpoints import router as messages_router
from notiflow.stats.endpoints import router as stats_router

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


class Health(BaseModel):
    model_config = {
        "json_schema_extra": {
            "examples": [{"status": "ok", "version": __version__, "database": "ok"}]
        }
    }

    status: str = Field(description="`ok`, or `degraded` when a part is failing.", examples=["ok"])
    version: str = Field(examples=[__version__])
    database: str = Field(description="`ok` or the error.", examples=["ok"])


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock = utcnow,
    engine: AsyncEngine | None = None,
) -> FastAPI:
    settings = settings or Settings()
    own_engine = engine is None
    db_engine = engine or create_engine(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine_signal = EngineSignal()
        try:
            yield
        finally:
            if own_engine:
                await db_engine.dispose()

    app = FastAPI(
        title="Notiflow",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.db_engine = db_engine
    app.state.sessionmaker = create_sessionmaker(db_engine)
    app.state.engine_signal = EngineSignal()
    install_error_handlers(app)

    api = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token)])
    api.include_router(clients_router)
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
        body = Health(
            status="ok" if database == "ok" else "degraded", version=__version__, database=database
        )
        return JSONResponse(body.model_dump(), status_code=200 if database == "ok" else 503)

    return app
