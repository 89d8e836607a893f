from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import event

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
    ("GET", "/api/v1/workers"),
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


class _Transactions:
    """Counts the transactions begun, committed and rolled back on an engine."""

    def __init__(self, engine: Any) -> None:
        self.events: list[str] = []
        for name in ("begin", "commit", "rollback"):
            event.listen(engine.sync_engine, name, self._recorder(name))

    def _recorder(self, name: str) -> Any:
        return lambda *_args: self.events.append(name)


async def test_an_authenticated_request_is_one_transaction(
    app: Any, api: httpx.AsyncClient
) -> None:
    """A stored token is looked up in the request's own transaction, not in one of its own."""
    async with transaction(app.state.sessionmaker) as session:
        _, plain = await service.create(session, name="ci")
    transactions = _Transactions(app.state.db_engine)
    response = await api.get("/api/v1/stats", headers={"Authorization": f"Bearer {plain}"})
    assert response.status_code == 200, response.text
    assert transactions.events == ["begin", "commit"]
    created = await api.post(
        "/api/v1/clients",
        json={"phone": "79001234567"},
        headers={"Authorization": f"Bearer {plain}"},
    )
    assert created.status_code == 201, created.text
    assert transactions.events == ["begin", "commit"] * 2


@pytest.mark.parametrize(
    ("header", "detail", "events"),
    [
        # A wrong token is looked up, then the request's transaction is rolled back.
        ("Bearer wrong", "invalid bearer token", ["begin", "rollback"]),
        # A missing one touches nothing.
        ("", "missing bearer token: send 'Authorization: Bearer <token>'", []),
    ],
)
async def test_a_refused_token_leaves_no_transaction_open(
    app: Any, api: httpx.AsyncClient, header: str, detail: str, events: list[str]
) -> None:
    transactions = _Transactions(app.state.db_engine)
    response = await api.get("/api/v1/stats", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"detail": detail, "errors": []}
    assert transactions.events == events
    assert app.state.db_engine.pool.checkedout() == 0
