"""The admin UI's Settings page, the Clone of a mailing and the audience preview of the mailing
form, through real HTTP requests to the app, on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from notiflow.admin.settings_page import setting_rows
from notiflow.config import Settings
from tests.conftest import TOKEN, FakeClock
from tests.helpers import iso, make_client, make_mailing
from tests.test_admin_ui import BASE, Html, make_token, sign_in, ui_audit
from tests.test_heartbeats import insert_worker

READ_TOKEN = "read-Hq7wPz3kLxV2"
PROVIDER_TOKEN = "provider-secret-Zq81xT"
PROVIDER_URL = "https://sms-user:url-password-Kp3@sms.example.test:8443/v1/send?key=query-key-Lm7"


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(
        database_url=db_url,
        api_tokens=[TOKEN],
        api_read_tokens=[READ_TOKEN],
        provider_url=PROVIDER_URL,
        provider_token=PROVIDER_TOKEN,
        send_rate=25,
        send_concurrency=64,
        _env_file=None,
    )


@pytest.fixture
async def ui(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client: cookies, no bearer token."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield client


def browser_like(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


def session_payload(client: httpx.AsyncClient) -> str:
    """What the signed session cookie holds (signed, not encrypted: anyone can read it)."""
    cookie = client.cookies["notiflow_ui"]
    data = cookie.split(".", 1)[0]
    return base64.b64decode(data + "=" * (-len(data) % 4)).decode()


async def audit_text(api: httpx.AsyncClient) -> str:
    return json.dumps((await api.get("/api/v1/audit", params={"limit": 1000})).json())


# --- the settings ------------------------------------------------------------------------------


async def test_settings_show_the_engine_never_a_secret(
    app: Any, ui: httpx.AsyncClient, clock: FakeClock
) -> None:
    await sign_in(ui)
    page = await ui.get("/ui/settings")
    assert page.status_code == 200
    shown = Html(page.text)
    assert "/ui/settings" in {e["href"] for e in shown.with_attr("href")}  # in the nav
    assert shown.text("NOTIFLOW_PROVIDER_URL") == (
        "https://sms-user:***@sms.example.test:8443/v1/send?…"
    )
    assert shown.text("NOTIFLOW_PROVIDER_TOKEN") == "set"
    assert shown.text("NOTIFLOW_PROVIDER_TIMEOUT") == "10"
    assert shown.text("NOTIFLOW_SEND_CONCURRENCY") == "64"
    assert shown.text("NOTIFLOW_SEND_RATE") == "25"
    assert shown.text("NOTIFLOW_SEND_MAX_ATTEMPTS") == "0"
    assert shown.text("NOTIFLOW_WORKER_HEARTBEAT_SECONDS") == "5"
    assert shown.text("NOTIFLOW_SESSION_SECRET").startswith("not set")
    # Each with what it does, from the settings' own documentation.
    assert "Requests in flight to the provider at once." in page.text
    # No secret, not even in part: not the provider's token or password, not an API token.
    for secret in (PROVIDER_TOKEN, "url-password-Kp3", "query-key-Lm7", TOKEN, READ_TOKEN):
        assert secret not in page.text
        assert secret[-8:] not in page.text

    # Without a provider URL the engine sends to the built-in sandbox.
    app.state.settings = app.state.settings.model_copy(
        update={"provider_url": None, "provider_token": ""}
    )
    shown = Html((await ui.get("/ui/settings")).text)
    assert shown.text("NOTIFLOW_PROVIDER_URL") == "built-in sandbox"
    assert shown.text("NOTIFLOW_PROVIDER_TOKEN").startswith("not set")


def test_secrets_and_passwords_are_never_shown() -> None:
    settings = Settings(
        database_url="postgresql://notiflow:db-password-Qw9@db.internal:5432/notiflow",
        provider_url="http://provider.internal/send",
        metrics_token="metrics-secret-Rt5",
        session_secret="session-secret-" + "s" * 30,
        _env_file=None,
    )
    shown = {row.variable: row.value for _group, rows in setting_rows(settings) for row in rows}
    assert shown["NOTIFLOW_DATABASE_URL"] == (
        "postgresql+asyncpg://notiflow:***@db.internal:5432/notiflow"
    )
    assert shown["NOTIFLOW_PROVIDER_URL"] == "http://provider.internal/send"
    assert shown["NOTIFLOW_METRICS_TOKEN"] == "set"
    assert shown["NOTIFLOW_SESSION_SECRET"] == "set"
    assert shown["NOTIFLOW_PROVIDER_TOKEN"].startswith("not set")
    every_value = " ".join(shown.values())
    for secret in ("db-password-Qw9", "metrics-secret-Rt5", "session-secret-"):
        assert secret not in every_value


def test_the_report_and_sign_in_settings_are_shown_without_their_secrets() -> None:
    settings = Settings(
        report_to="ops@example.com",
        report_from="notiflow@example.com",
        smtp_url="smtp://mailer:smtp-password-Hy6@smtp.example.com:587",
        oidc_issuer="https://login.example.com/realms/notiflow",
        oidc_client_id="notiflow-ui",
        oidc_client_secret="oidc-secret-Vb2",
        oidc_allowed_domains="example.com",
        _env_file=None,
    )
    shown = {row.variable: row.value for _group, rows in setting_rows(settings) for row in rows}
    assert shown["NOTIFLOW_REPORT_TO"] == "ops@example.com"
    assert shown["NOTIFLOW_SMTP_URL"] == "set"
    assert shown["NOTIFLOW_OIDC_ISSUER"] == "https://login.example.com/realms/notiflow"
    assert shown["NOTIFLOW_OIDC_CLIENT_SECRET"] == "set"
    assert shown["NOTIFLOW_OIDC_ALLOWED_DOMAINS"] == "example.com"
    assert shown["NOTIFLOW_OIDC_ALLOWED_EMAILS"] == "not set"
    assert shown["NOTIFLOW_OIDC_ROLE"] == "send"
    every_value = " ".join(shown.values())
    for secret in ("smtp-password-Hy6", "oidc-secret-Vb2"):
        assert secret not in every_value
    unset = {
        row.variable: row.value
        for _g, rows in setting_rows(Settings(_env_file=None))
        for row in rows
    }
    assert unset["NOTIFLOW_SMTP_URL"] == "not set: no daily report is sent"
    assert unset["NOTIFLOW_OIDC_ISSUER"] == "not set"


async def test_settings_list_every_known_worker(
    app: Any, api: httpx.AsyncClient, ui: httpx.AsyncClient, clock: FakeClock
) -> None:
    now = clock()
    await insert_worker(app, "w-alive", last_beat_at=now - timedelta(seconds=5))
    await insert_worker(app, "w-silent", last_beat_at=now - timedelta(minutes=10))
    await insert_worker(
        app,
        "w-stopped",
        last_beat_at=now - timedelta(minutes=3),
        stopped_at=now - timedelta(minutes=3),
    )
    await sign_in(ui, await make_token(api, "read"))  # a read: for every role
    page = Html((await ui.get("/ui/settings")).text)
    rows = {e["data-worker"]: e["data-alive"] for e in page.with_attr("data-worker")}
    assert rows == {"w-alive": "yes", "w-silent": "no", "w-stopped": "no"}
    workers = page.text("workers-all")
    assert "not seen for over a minute" in workers
    assert "stopped " + (now - timedelta(minutes=3)).strftime("%Y-%m-%d %H:%M:%S") in workers
    assert (now - timedelta(seconds=5)).strftime("%H:%M:%S") in workers  # the last beat


# --- API tokens --------------------------------------------------------------------------------


async def test_a_created_token_is_shown_once(
    app: Any, api: httpx.AsyncClient, ui: httpx.AsyncClient
) -> None:
    csrf = await sign_in(ui)
    response = await ui.post(
        "/ui/settings/tokens", data={"csrf_token": csrf, "name": "crm sync", "role": "send"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert "location" not in response.headers
    created = Html(response.text)
    plain = created.text("new-token")
    assert plain.startswith("nf_")
    assert len(plain) > 40
    assert created.text("new-token-name") == "crm sync"
    # Nowhere else: not in the session cookie, not on the settings page, not in the audit.
    assert plain not in response.headers.get("set-cookie", "")
    assert plain not in session_payload(ui)
    listing = await ui.get("/ui/settings")
    assert plain not in listing.text
    assert plain[:10] not in listing.text
    assert {e["data-token"] for e in Html(listing.text).with_attr("data-token")} == {
        "config#1",
        "config-read#1",
        "crm sync",
    }
    assert plain not in await audit_text(api)

    # It is a real token, of the role asked for.
    stored = (await api.get("/api/v1/tokens")).json()["items"]
    assert [(t["name"], t["role"]) for t in stored] == [("crm sync", "send")]
    with_it = {"Authorization": f"Bearer {plain}"}
    assert (await api.get("/api/v1/mailings", headers=with_it)).status_code == 200
    assert (await api.get("/api/v1/tokens", headers=with_it)).status_code == 403  # send, not admin
    assert await ui_audit(api) == [("token.create", "config#1", stored[0]["id"])]


async def test_configured_tokens_are_listed_without_values_and_not_revocable(
    ui: httpx.AsyncClient,
) -> None:
    await sign_in(ui)
    page = await ui.get("/ui/settings")
    shown = Html(page.text)
    assert shown.text("token-list").count("from configuration") == 2
    assert "NOTIFLOW_API_TOKENS" in shown.text("token-list")
    assert "NOTIFLOW_API_READ_TOKENS" in shown.text("token-list")
    assert not [action for action in shown.forms if action.endswith("/revoke")]
    assert TOKEN not in page.text
    assert READ_TOKEN not in page.text


async def test_the_token_form_shows_the_apis_errors(
    api: httpx.AsyncClient, ui: httpx.AsyncClient
) -> None:
    csrf = await sign_in(ui)
    bad = {"name": "  ", "role": "owner"}
    response = await ui.post("/ui/settings/tokens", data={"csrf_token": csrf, **bad})
    assert response.status_code == 422
    errors = {e["data-field"] for e in Html(response.text).with_attr("data-field")}
    assert errors == {"name", "role"}
    api_answer = await api.post("/api/v1/tokens", json=bad)
    assert api_answer.status_code == 422
    for error in api_answer.json()["errors"]:
        assert error["message"] in html.unescape(response.text)
    assert "nf_" not in response.text
    assert (await api.get("/api/v1/tokens")).json()["total"] == 0
    assert await ui_audit(api) == []


async def test_revoking_a_token_ends_the_sessions_signed_in_with_it(
    app: Any, api: httpx.AsyncClient, ui: httpx.AsyncClient
) -> None:
    plain = await make_token(api, "send")
    token_id = (await api.get("/api/v1/tokens")).json()["items"][0]["id"]
    async with browser_like(app) as other:
        await sign_in(other, plain)
        assert (await other.get("/ui/mailings")).status_code == 200

        csrf = await sign_in(ui)
        page = Html((await ui.get("/ui/settings")).text)
        url = f"/ui/settings/tokens/{token_id}/revoke"
        revoke = next(e for e in page.elements if e.get("action") == url)
        assert "Revoke the token send-person?" in revoke["data-confirm"]  # it asks first
        response = await ui.post(url, data={"csrf_token": csrf})
        assert response.status_code == 303
        assert response.headers["location"] == "/ui/settings#tokens"
        assert f"Token {token_id} was revoked." in (await ui.get("/ui/settings")).text

        # The other session ends with its token, and the API refuses it too.
        assert (await other.get("/ui/mailings")).status_code == 303
        assert (
            await api.get("/api/v1/mailings", headers={"Authorization": f"Bearer {plain}"})
        ).status_code == 401

    # Twice: said plainly, nothing else happens.
    again = await ui.post(url, data={"csrf_token": csrf})
    assert again.status_code == 303
    assert "does not exist" in (await ui.get("/ui/settings")).text
    assert await ui_audit(api) == [("token.delete", "config#1", token_id)]


async def test_revoking_your_own_token_signs_you_out(
    api: httpx.AsyncClient, ui: httpx.AsyncClient
) -> None:
    plain = await make_token(api, "admin")
    token_id = (await api.get("/api/v1/tokens")).json()["items"][0]["id"]
    csrf = await sign_in(ui, plain)
    page = Html((await ui.get("/ui/settings")).text)
    assert "(this session)" in page.text("token-list")
    revoke = next(e for e in page.elements if e.get("action", "").endswith(f"/{token_id}/revoke"))
    assert "including yours" in revoke["data-confirm"]
    response = await ui.post(f"/ui/settings/tokens/{token_id}/revoke", data={"csrf_token": csrf})
    assert response.status_code == 303
    followed = await ui.get(response.headers["location"])
    assert followed.status_code == 303
    assert followed.headers["location"].startswith("/ui/sign-in")
    assert "Your own token was revoked" in (await ui.get(followed.headers["location"])).text


@pytest.mark.parametrize("role", ["read", "send"])
async def test_only_admins_see_and_manage_tokens(
    app: Any, api: httpx.AsyncClient, ui: httpx.AsyncClient, role: str
) -> None:
    victim = (await api.post("/api/v1/tokens", json={"name": "victim", "role": "read"})).json()
    token_id = victim["id"]
    csrf = await sign_in(ui, await make_token(api, role))
    page = await ui.get("/ui/settings")
    assert page.status_code == 200  # the provider and the workers are for everyone
    shown = Html(page.text)
    assert "token-list" not in shown.text_of
    assert "Only an admin token can see and manage" in shown.text("tokens-admin-only")
    created = await ui.post(
        "/ui/settings/tokens", data={"csrf_token": csrf, "name": "mine", "role": "admin"}
    )
    assert created.status_code == 403
    assert f"role is {role}; this needs admin" in created.text
    revoked = await ui.post(f"/ui/settings/tokens/{token_id}/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 403
    names = [t["name"] for t in (await api.get("/api/v1/tokens")).json()["items"]]
    assert names == ["victim", f"{role}-person"]
    still = {"Authorization": f"Bearer {victim['token']}"}
    assert (await api.get("/api/v1/mailings", headers=still)).status_code == 200
    assert await ui_audit(api) == []


async def test_token_writes_need_the_csrf_token(
    api: httpx.AsyncClient, ui: httpx.AsyncClient
) -> None:
    plain = await make_token(api, "read")
    token_id = (await api.get("/api/v1/tokens")).json()["items"][0]["id"]
    await sign_in(ui)
    for data in ({}, {"csrf_token": "forged"}):
        created = await ui.post("/ui/settings/tokens", data={**data, "name": "x", "role": "read"})
        assert created.status_code == 403
        assert "nf_" not in created.text
        revoked = await ui.post(f"/ui/settings/tokens/{token_id}/revoke", data=data)
        assert revoked.status_code == 403
    assert len((await api.get("/api/v1/tokens")).json()["items"]) == 1
    still = {"Authorization": f"Bearer {plain}"}
    assert (await api.get("/api/v1/mailings", headers=still)).status_code == 200
    assert await ui_audit(api) == []


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/ui/settings/tokens/abc/revoke", 404),
        ("/ui/settings/tokens/0/revoke", 404),
        ("/ui/settings/tokens/99999999999999999999999/revoke", 404),
    ],
)
async def test_bad_token_ids_are_error_pages(ui: httpx.AsyncClient, path: str, status: int) -> None:
    csrf = await sign_in(ui)
    response = await ui.post(path, data={"csrf_token": csrf})
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")


# --- clone -------------------------------------------------------------------------------------


async def test_clone_prefills_the_form_and_saves_through_create(
    api: httpx.AsyncClient, ui: httpx.AsyncClient, clock: FakeClock
) -> None:
    original = await make_mailing(
        api,
        clock(),
        start_in=timedelta(hours=-1),
        duration=timedelta(hours=3, minutes=30),
        text="Spring sale: 20% off",
        filter={"operator_codes": ["900", "916"], "tags": ["vip"]},
        send_window={"start": "09:00", "end": "21:00"},
    )
    csrf = await sign_in(ui)
    detail = Html((await ui.get(f"/ui/mailings/{original['id']}")).text)
    clone_link = next(e for e in detail.elements if e.get("id") == "clone")
    assert clone_link["href"] == f"/ui/mailings/new?from={original['id']}"

    page = await ui.get(clone_link["href"])
    assert page.status_code == 200
    form = Html(page.text)
    values = dict(form.forms["/ui/mailings/new"])
    assert form.text("text") == "Spring sale: 20% off"
    start = clock().replace(second=0, tzinfo=None) + timedelta(minutes=1)
    assert values["start_time"] == start.isoformat()
    assert values["end_time"] == (start + timedelta(hours=3, minutes=30)).isoformat()
    assert values["operator_codes"] == "900, 916"
    assert values["tags"] == "vip"
    assert (values["window_start"], values["window_end"]) == ("09:00", "21:00")
    note = form.text("cloned-from")
    assert f"mailing {original['id']}" in note
    assert "3 h 30 min" in note
    assert "starts at the next minute" in note

    values["text"] = form.text("text")
    saved = await ui.post("/ui/mailings/new", data=values)
    assert saved.status_code == 303, saved.text
    clone_id = int(saved.headers["location"].rsplit("/", 1)[1])
    assert clone_id != original["id"]
    clone = (await api.get(f"/api/v1/mailings/{clone_id}")).json()
    for key in ("text", "filter", "send_window"):
        assert clone[key] == original[key]
    assert clone["start_time"] == iso(start.replace(tzinfo=UTC))
    assert clone["status"] == "scheduled"
    assert await ui_audit(api) == [("mailing.create", "config#1", clone_id)]
    assert csrf == values["csrf_token"]


async def test_clone_needs_a_mailing_and_the_role_to_create(
    app: Any, api: httpx.AsyncClient, ui: httpx.AsyncClient, clock: FakeClock
) -> None:
    mailing = await make_mailing(api, clock())
    await sign_in(ui)
    missing = await ui.get("/ui/mailings/new?from=999")
    assert missing.status_code == 404
    assert "mailing 999 not found" in missing.text
    assert (await ui.get("/ui/mailings/new?from=abc")).status_code == 422
    async with browser_like(app) as reader:
        await sign_in(reader, await make_token(api, "read"))
        assert "clone" not in Html((await reader.get(f"/ui/mailings/{mailing['id']}")).text).text_of
        assert (await reader.get(f"/ui/mailings/new?from={mailing['id']}")).status_code == 403


# --- the audience preview ----------------------------------------------------------------------


def _clock_face(at: datetime) -> str:
    return at.strftime("%H:%M")


async def _preview(ui: httpx.AsyncClient, **fields: str) -> tuple[httpx.Response, Html]:
    response = await ui.get("/ui/mailings/preview", params=fields)
    return response, Html(response.text)


async def test_the_preview_counts_what_the_api_counts(
    api: httpx.AsyncClient, ui: httpx.AsyncClient, clock: FakeClock
) -> None:
    # Here (UTC) and twelve hours away: a two-hour window open here now is shut there.
    for n in range(4):
        await make_client(api, f"7900000000{n}", tag="vip", timezone="UTC")
    for n in range(3):
        await make_client(api, f"7916000000{n}", tag="vip", timezone="+12:00")
    for n in range(2):
        await make_client(api, f"7926000000{n}", tag="other", timezone="UTC")
    opted = await make_client(api, "79000000009", tag="vip", timezone="UTC")
    assert (await api.post(f"/api/v1/clients/{opted['id']}/opt-out")).status_code == 200
    await sign_in(ui)

    now = clock()
    window = {
        "window_start": _clock_face(now - timedelta(hours=1)),
        "window_end": _clock_face(now + timedelta(hours=1)),
    }
    cases = [
        ({}, {}),
        ({"tags": "vip"}, {"tags": ["vip"]}),
        ({"tags": "vip", "operator_codes": "916"}, {"tags": ["vip"], "operator_codes": ["916"]}),
        ({"tags": "nobody"}, {"tags": ["nobody"]}),
        ({"tags": "vip", **window}, {"tags": ["vip"]}),
    ]
    for fields, api_filter in cases:
        response, fragment = await _preview(ui, **fields)
        assert response.status_code == 200
        body: dict[str, Any] = {
            "text": "x",
            "start_time": iso(now),
            "end_time": iso(now + timedelta(hours=2)),
            "filter": api_filter,
        }
        if "window_start" in fields:
            body["send_window"] = {"start": fields["window_start"], "end": fields["window_end"]}
        expected = (await api.post("/api/v1/mailings/preview", json=body)).json()
        count = next(e for e in fragment.elements if e.get("id") == "audience-count")
        assert int(count["data-matching"]) == expected["matching"]
        assert int(count["data-audience"]) == expected["audience"]
        if expected["in_window_now"] is None:
            assert "data-outside" not in count
        else:
            assert int(count["data-outside"]) == expected["audience"] - expected["in_window_now"]

    _, everyone = await _preview(ui)
    assert everyone.text("audience-count") == (
        "10 clients match; 1 of them opted out, so 9 would get it."
    )
    _, vip_in_window = await _preview(ui, tags="vip", **window)
    assert vip_in_window.text("audience-count") == (
        "8 clients match; 1 of them opted out, so 7 would get it; "
        "3 of those are outside the send window now."
    )
    _, none = await _preview(ui, tags="nobody")
    assert none.text("audience-count") == "No client matches."


async def test_the_preview_shows_the_apis_errors_not_a_500(
    api: httpx.AsyncClient, ui: httpx.AsyncClient, clock: FakeClock
) -> None:
    await sign_in(ui)
    response, fragment = await _preview(ui, operator_codes="9x", window_start="25:00")
    assert response.status_code == 200  # a fragment htmx swaps in, errors and all
    errors = {e["data-field"] for e in fragment.with_attr("data-field")}
    assert errors == {"operator_codes", "window_start", "window_end"}
    api_answer = await api.post(
        "/api/v1/mailings/preview",
        json={
            "text": "x",
            "start_time": iso(clock()),
            "end_time": iso(clock() + timedelta(hours=1)),
            "filter": {"operator_codes": ["9x"]},
            "send_window": {"start": "25:00"},  # an empty field is a missing one
        },
    )
    assert api_answer.status_code == 422
    shown = html.unescape(response.text)
    assert "Send window to: required" in shown
    for error in api_answer.json()["errors"]:
        assert error["message"] in shown
    assert "Operator codes:" in fragment.text("audience-errors")

    same, _ = await _preview(ui, window_start="09:00", window_end="09:00")
    assert "start and end must differ" in same.text
    too_long, _ = await _preview(ui, tags="x" * 10_001)
    assert too_long.status_code == 422
    assert too_long.headers["content-type"].startswith("text/html")


async def test_the_form_asks_for_the_preview_as_it_changes(
    api: httpx.AsyncClient, ui: httpx.AsyncClient, clock: FakeClock
) -> None:
    mailing = await make_mailing(api, clock())
    await sign_in(ui)
    for url in ("/ui/mailings/new", f"/ui/mailings/{mailing['id']}/edit"):
        page = Html((await ui.get(url)).text)
        preview = next(e for e in page.elements if e.get("id") == "audience-preview")
        assert preview["hx-get"] == "/ui/mailings/preview"
        assert preview["hx-include"] == "#audience"
        assert "delay:" in preview["hx-trigger"]
        assert "change" in preview["hx-trigger"]
        fieldset = next(e for e in page.elements if e.get("id") == "audience")
        assert fieldset["tag"] == "fieldset"


async def test_the_preview_needs_a_session(ui: httpx.AsyncClient) -> None:
    response = await ui.get("/ui/mailings/preview", headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response.headers["HX-Redirect"].startswith("/ui/sign-in")
