"""The audit log: every write that succeeds has an entry, written in the write's transaction."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from notiflow.audit.notes import mask_phone
from notiflow.audit.recorder import Target, target_of
from tests.conftest import FakeClock
from tests.helpers import iso, make_client, make_mailing

pytestmark = pytest.mark.usefixtures("db_url")


async def _log(api: httpx.AsyncClient, **filters: Any) -> list[dict[str, Any]]:
    response = await api.get("/api/v1/audit", params=filters)
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


def _brief(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["actor"], e["action"], e["object_type"], e["object_id"]) for e in entries]


@pytest.mark.parametrize(
    ("method", "route", "target"),
    [
        ("POST", "/api/v1/mailings", Target("mailing.create", "mailing", None, "mailings", True)),
        (
            "PATCH",
            "/api/v1/mailings/{mailing_id}",
            Target("mailing.update", "mailing", "mailing_id", "mailings", False),
        ),
        (
            "PUT",
            "/api/v1/clients/{client_id}",
            Target("client.replace", "client", "client_id", "clients", False),
        ),
        (
            "POST",
            "/api/v1/mailings/{mailing_id}/retry-failed",
            Target("mailing.retry-failed", "mailing", "mailing_id", "mailings", False),
        ),
        (
            "POST",
            "/api/v1/clients/import",
            Target("client.import", "client", None, "clients", False),
        ),
        (
            "DELETE",
            "/api/v1/tokens/{token_id}",
            Target("token.delete", "token", "token_id", "tokens", False),
        ),
        (
            "DELETE",
            "/api/v1/mailings/{mailing_id}/webhooks/{webhook_id}",
            Target("webhook.delete", "webhook", "webhook_id", "webhooks", False),
        ),
        (
            "POST",
            "/api/v1/{thing_id}",
            Target("POST /api/v1/{thing_id}", None, "thing_id", None, False),
        ),
    ],
)
def test_what_a_route_does(method: str, route: str, target: Target) -> None:
    assert target_of(route, method) == target


def test_phones_are_masked() -> None:
    assert mask_phone("79001234567") == "7900*****67"


async def test_writes_are_recorded_with_who_what_and_which(
    api: httpx.AsyncClient, clock: FakeClock
) -> None:
    client = await make_client(api, "79001234567", tag="vip")
    mailing = await make_mailing(api, clock.now)
    patched = await api.patch(
        f"/api/v1/mailings/{mailing['id']}", json={"text": "new"}, headers={"X-Request-ID": "r-1"}
    )
    assert patched.status_code == 200
    assert (await api.post(f"/api/v1/mailings/{mailing['id']}/cancel")).status_code == 200
    imported = await api.post(
        "/api/v1/clients/import",
        content="phone\n79001234567\n79161234567\nbad\n",
        headers={"Content-Type": "text/csv"},
    )
    assert imported.status_code == 200
    assert (await api.delete(f"/api/v1/clients/{client['id']}")).status_code == 204
    token = (await api.post("/api/v1/tokens", json={"name": "ci", "role": "send"})).json()
    assert (await api.delete(f"/api/v1/tokens/{token['id']}")).status_code == 204
    # Reads are not writes: none of these is recorded.
    await api.get("/api/v1/mailings")
    await api.get(f"/api/v1/mailings/{mailing['id']}/messages", params={"format": "csv"})

    entries = await _log(api)
    assert _brief(entries) == [
        ("config#1", "token.delete", "token", token["id"]),
        ("config#1", "token.create", "token", token["id"]),
        ("config#1", "client.delete", "client", client["id"]),
        ("config#1", "client.import", "client", None),
        ("config#1", "mailing.cancel", "mailing", mailing["id"]),
        ("config#1", "mailing.update", "mailing", mailing["id"]),
        ("config#1", "mailing.create", "mailing", mailing["id"]),
        ("config#1", "client.create", "client", client["id"]),
    ]
    by_action = {e["action"]: e for e in entries}
    assert by_action["mailing.update"]["detail"] == {"request_id": "r-1"}
    assert by_action["mailing.update"]["method"] == "PATCH"
    assert by_action["mailing.update"]["route"] == "/api/v1/mailings/{mailing_id}"
    assert by_action["mailing.cancel"]["route"] == "/api/v1/mailings/{mailing_id}/cancel"
    assert by_action["client.create"]["detail"] == {"phone": "7900*****67"}
    assert by_action["client.delete"]["detail"] == {"phone": "7900*****67"}
    assert by_action["client.import"]["detail"] == {"created": 1, "updated": 1, "rejected": 1}
    assert by_action["token.create"]["detail"] == {"name": "ci", "role": "send"}
    assert by_action["token.delete"]["detail"] == {"name": "ci", "role": "send"}
    assert all(e["at"] == iso(clock.now) for e in entries)
    # Never a whole phone number, never a token.
    text = str(entries)
    assert "79001234567" not in text
    assert "79161234567" not in text
    assert token["token"] not in text


async def test_a_stored_token_is_named_by_its_name(api: httpx.AsyncClient) -> None:
    made = (await api.post("/api/v1/tokens", json={"name": "crm", "role": "send"})).json()
    headers = {"Authorization": f"Bearer {made['token']}"}
    client = await api.post("/api/v1/clients", json={"phone": "79001234567"}, headers=headers)
    assert client.status_code == 201
    [entry] = await _log(api, actor="crm")
    assert (entry["action"], entry["object_id"]) == ("client.create", client.json()["id"])
    assert entry["detail"] == {"token_id": made["id"], "phone": "7900*****67"}


async def test_failed_writes_leave_no_entry(api: httpx.AsyncClient, clock: FakeClock) -> None:
    await make_client(api, "79001234567")
    mailing = await make_mailing(api, clock.now)
    assert (await api.post(f"/api/v1/mailings/{mailing['id']}/cancel")).status_code == 200
    before = await _log(api)
    failures = [
        await api.post("/api/v1/clients", json={"phone": "79001234567"}),  # 409 duplicate
        await api.post("/api/v1/clients", json={"phone": "123"}),  # 422
        await api.patch(f"/api/v1/mailings/{mailing['id']}", json={"text": "x"}),  # 409 frozen
        await api.post(f"/api/v1/mailings/{mailing['id']}/start"),  # 409 cancelled
        await api.delete("/api/v1/clients/999"),  # 404
        await api.delete("/api/v1/tokens/999"),  # 404
        await api.post("/api/v1/clients", content=b"{", headers={"Content-Type": "text/plain"}),
    ]
    assert [r.status_code for r in failures] == [409, 422, 409, 409, 404, 404, 415]
    read = (await api.post("/api/v1/tokens", json={"name": "r", "role": "read"})).json()
    refused = await api.post(
        "/api/v1/clients",
        json={"phone": "79161234567"},
        headers={"Authorization": f"Bearer {read['token']}"},
    )
    assert refused.status_code == 403
    after = await _log(api)
    assert _brief(after) == [("config#1", "token.create", "token", read["id"]), *_brief(before)]


async def test_filters_and_pages(api: httpx.AsyncClient, clock: FakeClock) -> None:
    start = clock.now
    first = await make_mailing(api, clock.now)
    clock.advance(minutes=10)
    second = await make_mailing(api, clock.now)
    await api.post(f"/api/v1/mailings/{second['id']}/cancel")
    clock.advance(minutes=10)
    made = (await api.post("/api/v1/tokens", json={"name": "ops", "role": "send"})).json()
    ops = {"Authorization": f"Bearer {made['token']}"}
    assert (await api.post(f"/api/v1/mailings/{first['id']}/cancel", headers=ops)).is_success

    assert _brief(await _log(api, actor="ops")) == [
        ("ops", "mailing.cancel", "mailing", first["id"])
    ]
    assert [e["object_id"] for e in await _log(api, action="mailing.cancel")] == [
        first["id"],
        second["id"],
    ]
    assert [
        e["action"] for e in await _log(api, object_type="mailing", object_id=second["id"])
    ] == [
        "mailing.cancel",
        "mailing.create",
    ]
    assert [e["action"] for e in await _log(api, object_type="token")] == ["token.create"]
    window = await _log(api, since=iso(start + timedelta(minutes=5)), until=iso(clock.now))
    assert [e["action"] for e in window] == ["mailing.cancel", "mailing.create"]
    assert len(await _log(api, since=iso(clock.now))) == 2  # since is inclusive
    assert await _log(api, until=iso(start)) == []  # until is exclusive

    page = (await api.get("/api/v1/audit", params={"limit": 2, "offset": 1})).json()
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 1)
    assert [e["action"] for e in page["items"]] == ["token.create", "mailing.cancel"]
    # A blank filter is no filter; bad ones are 422.
    assert len(await _log(api, actor="")) == 5
    for bad in ({"object_id": "x"}, {"since": "yesterday"}, {"limit": 0}, {"actor": "a\x00"}):
        response = await api.get("/api/v1/audit", params=bad)
        assert response.status_code == 422, (bad, response.text)
