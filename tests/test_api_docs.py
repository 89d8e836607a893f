"""The OpenAPI document: every body and answer documented with an example; /docs served."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from notiflow.app import create_app
from notiflow.config import Settings


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def _has_example(spec: dict[str, Any], media: dict[str, Any]) -> bool:
    if "example" in media or "examples" in media:
        return True
    schema = _resolve(spec, media.get("schema", {}))
    if "examples" in schema or "example" in schema:
        return True
    if schema.get("type") == "array":
        return _has_example(spec, {"schema": schema.get("items", {})})
    return False


def _operations() -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    spec = create_app(Settings(_env_file=None)).openapi()
    return [
        (method.upper(), path, operation, spec)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]


@pytest.mark.parametrize(
    ("method", "path", "operation", "spec"),
    _operations(),
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_every_body_and_answer_has_description_and_example(
    method: str, path: str, operation: dict[str, Any], spec: dict[str, Any]
) -> None:
    assert operation.get("summary"), f"{method} {path} has no summary"
    body = operation.get("requestBody")
    if body is not None:
        for media_type, media in body["content"].items():
            assert _has_example(spec, media), f"{method} {path} body {media_type} has no example"
    for code, response in operation["responses"].items():
        assert response.get("description"), f"{method} {path} {code} has no description"
        for media_type, media in response.get("content", {}).items():
            assert _has_example(spec, media), f"{method} {path} {code} {media_type} has no example"
    if path.startswith("/api/v1"):
        assert "401" in operation["responses"], f"{method} {path} does not document 401"
        assert operation.get("security"), f"{method} {path} has no security requirement"


async def test_docs_and_openapi_need_no_token(api: httpx.AsyncClient) -> None:
    anonymous = {"Authorization": ""}
    docs = await api.get("/docs", headers=anonymous)
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    spec = await api.get("/openapi.json", headers=anonymous)
    assert spec.status_code == 200
    assert spec.json()["info"]["title"] == "Notiflow"


async def test_health(api: httpx.AsyncClient) -> None:
    response = await api.get("/health", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["database"] == "ok"


async def test_health_reports_a_broken_database() -> None:
    settings = Settings(
        database_url="postgresql+asyncpg://postgres@127.0.0.1:1/nowhere",
        _env_file=None,
    )
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/health")
    await app.state.db_engine.dispose()
    assert response.status_code == 503
    assert response.json()["status"] == "failing"
    assert response.json()["reason"].startswith("the database is unreachable")


async def test_an_unreachable_database_is_a_503_not_a_500() -> None:
    settings = Settings(
        database_url="postgresql+asyncpg://postgres@127.0.0.1:1/nowhere",
        api_tokens=["t"],
        _env_file=None,
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/api/v1/clients", headers={"Authorization": "Bearer t"})
    await app.state.db_engine.dispose()
    assert response.status_code == 503
    assert response.json()["detail"] == "the database is unavailable right now; try again shortly"
    assert response.headers["Retry-After"] == "1"
