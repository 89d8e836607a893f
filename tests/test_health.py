"""The API's /health, /health/live and /health/ready: the database, the schema's revision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from notiflow.app import create_app
from notiflow.config import Settings
from notiflow.db.session import transaction
from notiflow.health.service import migrations_head

UNREACHABLE = "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"


async def _get(settings: Settings, *paths: str) -> list[httpx.Response]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [await client.get(path) for path in paths]
    finally:
        await app.state.db_engine.dispose()


async def set_revision(app: Any, revision: str) -> None:
    async with transaction(app.state.sessionmaker) as session:
        await session.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


async def test_live_and_ready(api: httpx.AsyncClient) -> None:
    live = await api.get("/health/live", headers={"Authorization": ""})
    assert live.status_code == 200
    assert live.json() == {"status": "ok", "version": "0.1.0"}
    ready = await api.get("/health/ready", headers={"Authorization": ""})
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ok",
        "reason": None,
        "database": "ok",
        "revision": migrations_head(),
        "head": migrations_head(),
    }


async def test_ready_is_503_while_the_schema_is_not_at_head(
    app: Any, api: httpx.AsyncClient
) -> None:
    head = migrations_head()
    await set_revision(app, "0001")
    try:
        ready = await api.get("/health/ready")
        health = await api.get("/health")
    finally:
        await set_revision(app, head)
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "failing"
    assert body["revision"] == "0001"
    assert body["head"] == head
    assert "revision 0001, not at" in body["reason"]
    assert "notiflow migrate" in body["reason"]
    assert health.status_code == 200  # /health asks whether the database answers, no more
    assert (await api.get("/health/ready")).status_code == 200


async def test_ready_is_503_on_a_database_never_migrated(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/empty.db", _env_file=None)
    ready, live = await _get(settings, "/health/ready", "/health/live")
    assert ready.status_code == 503
    assert ready.json()["database"] == "ok"
    assert ready.json()["revision"] is None
    assert ready.json()["reason"].startswith("the database is not migrated")
    assert live.status_code == 200


async def test_an_unreachable_database_fails_ready_but_not_live() -> None:
    settings = Settings(database_url=UNREACHABLE, _env_file=None)
    ready, live, health = await _get(settings, "/health/ready", "/health/live", "/health")
    assert ready.status_code == 503
    assert ready.json()["reason"].startswith("the database is unreachable")
    assert ready.json()["database"].startswith("error")
    assert live.status_code == 200
    assert health.status_code == 503
    assert health.json()["reason"].startswith("the database is unreachable")


async def test_health_endpoints_are_documented_under_service(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    for path in ("/health", "/health/live", "/health/ready", "/metrics"):
        assert spec["paths"][path]["get"]["tags"] == ["service"], path
    assert "text/plain" in spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
