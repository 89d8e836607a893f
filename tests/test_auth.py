from __future__ import annotations

from typing import Any

import httpx
import pytest

from notiflow.auth import service
from notiflow.db.session import transaction

pytestmark = pytest.mark.usefixtures("db_url")

ENDPOINTS = [
    ("GET", "/api/v1/clients"),
    ("POST", "/api/v1/clients"),
    ("POST", "/api/v1/clients/import"),
    ("GET", "/api/v1/clients/1"),
    ("PUT", "/api/v1/clients/1"),
    ("PATCH", "/api/v1/clients/1"),
    ("DELETE", "/api/v1/clients/1"),
    ("GET", "/api/v1/mailings"),
    ("POST", "/api/v1/mailings"),
    ("GET", "/api/v1/mailings/1"),
    ("PUT", "/api/v1/mailings/1"),
    ("PATCH", "/api/v1/mailings/1"),
    ("DELETE", "/api/v1/mailings/1"),
    ("POST", "/api/v1/mailings/1/start"),
    ("POST", "/api/v1/mailings/1/cancel"),
    ("GET", "/api/v1/mailings/1/stats"),
    ("GET", "/api/v1/mailings/1/messages"),
    ("GET", "/api/v1/messages/1"),
    ("GET", "/api/v1/stats"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("header", ["", "Bearer wrong", "Basic dGVzdDp0ZXN0", "Bearer "])
async def test_every_endpoint_needs_a_token(
    api: httpx.AsyncClient, method: str, path: str, header: str
) -> None:
    response = await api.request(method, path, headers={"Authorization": header})
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert "token" in response.json()["detail"]


async def test_stored_tokens_work_and_can_be_revoked(app: Any, api: httpx.AsyncClient) -> None:
    async with transaction(app.state.sessionmaker) as session:
        token, plain = await service.create(session, name="ci")
    ok = await api.get("/api/v1/stats", headers={"Authorization": f"Bearer {plain}"})
    assert ok.status_code == 200
    async with transaction(app.state.sessionmaker) as session:
        assert await service.revoke(session, token.id)
        stored = [t.token_hash for t in await service.list_all(session)]
    assert service.hash_token(plain) not in stored
    refused = await api.get("/api/v1/stats", headers={"Authorization": f"Bearer {plain}"})
    assert refused.status_code == 401


async def test_configured_tokens_from_settings(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/stats", headers={"Authorization": "bearer test-token"})
    assert response.status_code == 200
