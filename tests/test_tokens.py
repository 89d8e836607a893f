"""Token roles: which role each endpoint needs, the tokens API, configured tokens' roles."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, status

from notiflow.app import api_dependencies, create_app
from notiflow.auth import service
from notiflow.auth.roles import Role, default_role, require_role
from notiflow.config import Settings
from notiflow.db.session import transaction
from tests.conftest import TOKEN, FakeClock
from tests.helpers import make_client, make_mailing

pytestmark = pytest.mark.usefixtures("db_url")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _token(api: httpx.AsyncClient, role: str, name: str | None = None) -> str:
    response = await api.post("/api/v1/tokens", json={"name": name or role, "role": role})
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


# --- the rule, as a table ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("GET", "/api/v1/mailings", Role.read),
        ("HEAD", "/api/v1/mailings", Role.read),
        ("GET", "/api/v1/mailings/{mailing_id}/messages", Role.read),
        ("POST", "/api/v1/mailings", Role.send),
        ("PUT", "/api/v1/clients/{client_id}", Role.send),
        ("PATCH", "/api/v1/mailings/{mailing_id}", Role.send),
        ("POST", "/api/v1/mailings/{mailing_id}/pause", Role.send),
        ("POST", "/api/v1/mailings/{mailing_id}/retry-failed", Role.send),
        ("POST", "/api/v1/clients/import", Role.send),
        ("DELETE", "/api/v1/clients/{client_id}", Role.admin),
        ("DELETE", "/api/v1/mailings/{mailing_id}/opt-outs/{id}", Role.admin),
        ("GET", "/api/v1/tokens", Role.admin),
        ("POST", "/api/v1/tokens", Role.admin),
        ("GET", "/api/v1/webhooks", Role.admin),
        ("POST", "/api/v1/webhooks/{webhook_id}/test", Role.admin),
        ("GET", "/api/v1/audit", Role.admin),
        ("GET", "/api/v1/tokensmith", Role.read),  # an area is a path segment, not a prefix
    ],
)
def test_default_role(method: str, path: str, role: Role) -> None:
    assert default_role(method, path) is role


def test_roles_include_the_ones_before() -> None:
    assert Role.admin.allows(Role.send)
    assert Role.admin.allows(Role.read)
    assert Role.send.allows(Role.read)
    assert not Role.send.allows(Role.admin)
    assert not Role.read.allows(Role.send)


# --- every role against a representative endpoint of each kind --------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    needs: Role
    call: Callable[[httpx.AsyncClient, dict[str, str]], Awaitable[httpx.Response]]
    ok: int


async def _objects(api: httpx.AsyncClient, clock: FakeClock) -> dict[str, Any]:
    """What the calls act on, made by the admin token."""
    client = await make_client(api, "79001234567")
    mailing = await make_mailing(api, clock.now)
    other = await make_mailing(api, clock.now)
    token = (await api.post("/api/v1/tokens", json={"name": "victim", "role": "read"})).json()
    return {"client": client["id"], "mailing": mailing["id"], "other": other["id"], **token}


def _cases(ids: dict[str, Any], clock: FakeClock) -> list[Case]:
    mailing, client = ids["mailing"], ids["client"]
    future = (clock.now + timedelta(hours=5)).isoformat()
    return [
        Case("list mailings", Role.read, lambda c, h: c.get("/api/v1/mailings", headers=h), 200),
        Case(
            "get a client",
            Role.read,
            lambda c, h: c.get(f"/api/v1/clients/{client}", headers=h),
            200,
        ),
        Case(
            "export messages",
            Role.read,
            lambda c, h: c.get(f"/api/v1/mailings/{mailing}/messages?format=csv", headers=h),
            200,
        ),
        Case("overall stats", Role.read, lambda c, h: c.get("/api/v1/stats", headers=h), 200),
        Case(
            "create a client",
            Role.send,
            lambda c, h: c.post("/api/v1/clients", json={"phone": "79001112233"}, headers=h),
            201,
        ),
        Case(
            "import clients",
            Role.send,
            lambda c, h: c.post(
                "/api/v1/clients/import",
                content="phone\n79005556677\n",
                headers={**h, "Content-Type": "text/csv"},
            ),
            200,
        ),
        Case(
            "edit a mailing",
            Role.send,
            lambda c, h: c.patch(
                f"/api/v1/mailings/{mailing}", json={"end_time": future}, headers=h
            ),
            200,
        ),
        Case(
            "cancel a mailing",
            Role.send,
            lambda c, h: c.post(f"/api/v1/mailings/{ids['other']}/cancel", headers=h),
            200,
        ),
        Case(
            "delete a client",
            Role.admin,
            lambda c, h: c.delete(f"/api/v1/clients/{client}", headers=h),
            204,
        ),
        Case(
            "delete a mailing",
            Role.admin,
            lambda c, h: c.delete(f"/api/v1/mailings/{mailing}", headers=h),
            204,
        ),
        Case("list tokens", Role.admin, lambda c, h: c.get("/api/v1/tokens", headers=h), 200),
        Case(
            "make a token",
            Role.admin,
            lambda c, h: c.post("/api/v1/tokens", json={"name": "x", "role": "read"}, headers=h),
            201,
        ),
        Case(
            "revoke a token",
            Role.admin,
            lambda c, h: c.delete(f"/api/v1/tokens/{ids['id']}", headers=h),
            204,
        ),
        Case("read the audit log", Role.admin, lambda c, h: c.get("/api/v1/audit", headers=h), 200),
    ]


@pytest.mark.parametrize("role", list(Role))
async def test_every_role_against_each_kind_of_endpoint(
    api: httpx.AsyncClient, clock: FakeClock, role: Role
) -> None:
    headers = _bearer(await _token(api, role.value, name=f"a {role.value} token"))
    ids = await _objects(api, clock)
    for case in _cases(ids, clock):
        response = await case.call(api, headers)
        if role.allows(case.needs):
            assert response.status_code == case.ok, (case.name, response.text)
        else:
            assert response.status_code == 403, (case.name, response.text)
            method, path = response.request.method, response.request.url.path
            assert response.json() == {
                "detail": f"this token's role is {role.value!r}; "
                f"{method} {path} needs {case.needs.value!r}",
                "errors": [],
            }


async def test_a_refused_write_changes_nothing(api: httpx.AsyncClient) -> None:
    read = _bearer(await _token(api, "read"))
    refused = await api.post("/api/v1/clients", json={"phone": "79001234567"}, headers=read)
    assert refused.status_code == 403
    assert (await api.get("/api/v1/clients")).json()["total"] == 0


# --- configured tokens ------------------------------------------------------------------------


@pytest.fixture
async def configured(db_url: str, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=db_url,
        api_tokens=["admin-1", "admin-2"],
        api_send_tokens=["send-1"],
        api_read_tokens=["read-1"],
        _env_file=None,
    )
    app = create_app(settings, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://notiflow.test") as client:
        yield client
    await app.state.db_engine.dispose()


async def test_configured_tokens_have_roles_and_stable_names(
    configured: httpx.AsyncClient,
) -> None:
    api = configured
    body = {"phone": "79001234567"}
    assert (await api.get("/api/v1/clients", headers=_bearer("read-1"))).status_code == 200
    assert (
        await api.post("/api/v1/clients", json=body, headers=_bearer("read-1"))
    ).status_code == 403
    created = await api.post("/api/v1/clients", json=body, headers=_bearer("send-1"))
    assert created.status_code == 201
    deleting = f"/api/v1/clients/{created.json()['id']}"
    assert (await api.delete(deleting, headers=_bearer("send-1"))).status_code == 403
    assert (await api.delete(deleting, headers=_bearer("admin-2"))).status_code == 204
    log = (await api.get("/api/v1/audit", headers=_bearer("admin-1"))).json()["items"]
    assert [(e["actor"], e["action"]) for e in log] == [
        ("config#2", "client.delete"),
        ("config-send#1", "client.create"),
    ]


def test_configured_token_lists_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFLOW_API_TOKENS", "a, b")
    monkeypatch.setenv("NOTIFLOW_API_SEND_TOKENS", "c")
    monkeypatch.setenv("NOTIFLOW_API_READ_TOKENS", " d ,e,")
    settings = Settings(_env_file=None)
    assert settings.api_tokens == ["a", "b"]
    assert settings.api_send_tokens == ["c"]
    assert settings.api_read_tokens == ["d", "e"]


# --- the tokens API ---------------------------------------------------------------------------


async def test_tokens_api(api: httpx.AsyncClient, clock: FakeClock) -> None:
    created = await api.post("/api/v1/tokens", json={"name": " dashboard ", "role": "read"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["token"].startswith("nf_")
    assert (body["name"], body["role"]) == ("dashboard", "read")
    listed = (await api.get("/api/v1/tokens")).json()
    assert listed["total"] == 1
    assert listed["items"] == [
        {k: body[k] for k in ("id", "name", "role", "created_at")}
    ]  # never the token, never its hash
    token = _bearer(body["token"])
    assert (await api.get("/api/v1/stats", headers=token)).status_code == 200
    assert (await api.delete(f"/api/v1/tokens/{body['id']}")).status_code == 204
    assert (await api.get("/api/v1/stats", headers=token)).status_code == 401
    missing = await api.delete(f"/api/v1/tokens/{body['id']}")
    assert missing.status_code == 404
    assert missing.json()["detail"] == f"token {body['id']} not found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "role": "root"}, "role"),
        ({"name": "x"}, "role"),
        ({"name": "", "role": "read"}, "name"),
        ({"name": "   ", "role": "read"}, "name"),
        ({"name": "x" * 101, "role": "read"}, "name"),
        ({"name": "x", "role": "read", "token": "mine"}, "token"),
    ],
)
async def test_token_input_is_checked(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await api.post("/api/v1/tokens", json=body)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_stored_tokens_made_before_roles_are_admin(app: Any, api: httpx.AsyncClient) -> None:
    async with transaction(app.state.sessionmaker) as session:
        _, plain = await service.create(session, name="old")  # the default, as before roles
    listed = (await api.get("/api/v1/tokens")).json()["items"]
    assert [(t["name"], t["role"]) for t in listed] == [("old", "admin")]
    assert (await api.get("/api/v1/audit", headers=_bearer(plain))).status_code == 200


# --- how a new endpoint gets its role ---------------------------------------------------------


def _extra_router() -> APIRouter:
    """Endpoints as other engineers add them: nothing said, or an explicit role."""
    router = APIRouter(prefix="/mailings/{mailing_id}")

    @router.post("/snooze", summary="snooze", status_code=status.HTTP_200_OK)
    async def snooze(mailing_id: int) -> dict[str, int]:
        return {"snoozed": mailing_id}

    @router.post("/peek", summary="peek", dependencies=[require_role("read")])
    async def peek(mailing_id: int) -> dict[str, int]:
        return {"peeked": mailing_id}

    webhooks = APIRouter(prefix="/webhooks")

    @webhooks.get("", summary="webhooks")
    async def list_webhooks() -> list[int]:
        return []

    router.include_router(webhooks)  # under a mailing: not the admin area
    return router


async def test_new_endpoints_get_a_role_by_default_or_say_their_own(
    settings: Settings, clock: FakeClock
) -> None:
    app = create_app(settings, clock=clock)
    app.include_router(_extra_router(), prefix="/api/v1", dependencies=api_dependencies())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", headers=_bearer(TOKEN)
    ) as api:
        read, send = _bearer(await _token(api, "read")), _bearer(await _token(api, "send"))
        assert (await api.post("/api/v1/mailings/1/snooze", headers=read)).status_code == 403
        assert (await api.post("/api/v1/mailings/1/snooze", headers=send)).status_code == 200
        assert (await api.post("/api/v1/mailings/1/peek", headers=read)).status_code == 200
        assert (await api.get("/api/v1/webhooks", headers=send)).status_code == 403
        assert (await api.get("/api/v1/webhooks", headers=_bearer(TOKEN))).status_code == 200
        assert (await api.get("/api/v1/mailings/1/webhooks", headers=read)).status_code == 200
        # The POST marked read changes nothing: it is not a write, so it is not audited.
        actions = [e["action"] for e in (await api.get("/api/v1/audit")).json()["items"]]
        assert actions == ["mailing.snooze", "token.create", "token.create"]
    spec = app.openapi()
    operations = {
        (method.upper(), path): operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    }
    for key, role in [
        (("POST", "/api/v1/mailings/{mailing_id}/snooze"), "`send` or `admin`"),
        (("POST", "/api/v1/mailings/{mailing_id}/peek"), "`read` or higher"),
        (("POST", "/api/v1/mailings/{mailing_id}/pause"), "`send` or `admin`"),
        (("POST", "/api/v1/mailings/preview"), "`read` or higher"),
        (("GET", "/api/v1/webhooks"), "`admin`"),
        (("DELETE", "/api/v1/mailings/{mailing_id}"), "`admin`"),
    ]:
        assert operations[key]["description"].endswith(f"**Role:** {role}."), key
        assert "403" in operations[key]["responses"], key
    await app.state.db_engine.dispose()
