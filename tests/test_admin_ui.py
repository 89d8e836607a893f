"""The admin UI at /ui, through real HTTP requests to the app: sign-in, session, CSRF, roles,
the pages' numbers after a mailing ran against the sandbox, and the actions with their audit."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from notiflow.config import Settings
from tests.conftest import TOKEN
from tests.delivery_support import LiveClock, ThreadedSandbox, wait_for
from tests.helpers import make_mailing
from tests.test_delivery import StartEngine, completed, create_mailing, import_clients

BASE = "http://notiflow.test"


class Html(HTMLParser):
    """What the tests look at in a page: elements by id (their attributes and text), forms by
    action (their hidden fields), and every element's attributes."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[dict[str, str]] = []
        self.text_of: dict[str, str] = {}
        self.forms: dict[str, dict[str, str]] = {}
        self._open: list[tuple[str, str | None]] = []
        self._form: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        self.elements.append({"tag": tag, **values})
        if tag == "form":
            self._form = values.get("action", "")
            self.forms[self._form] = {}
        if tag == "input" and self._form is not None and "name" in values:
            self.forms[self._form][values["name"]] = values.get("value", "")
        if tag not in ("input", "meta", "link", "br", "img"):
            self._open.append((tag, values.get("id")))
            if values.get("id"):
                self.text_of[values["id"]] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        for _tag, element_id in self._open:
            if element_id:
                self.text_of[element_id] += " " + data

    def text(self, element_id: str) -> str:
        return " ".join(self.text_of[element_id].split())

    def with_attr(self, name: str) -> list[dict[str, str]]:
        return [element for element in self.elements if name in element]


@pytest.fixture
async def ui(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client: cookies, no bearer token."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


async def csrf_of(client: httpx.AsyncClient) -> str:
    page = Html((await client.get("/ui/sign-in")).text)
    return page.forms["/ui/sign-in"]["csrf_token"]


async def sign_in(client: httpx.AsyncClient, token: str = TOKEN) -> str:
    """Sign in; return the session's CSRF token."""
    response = await client.post(
        "/ui/sign-in", data={"token": token, "csrf_token": await csrf_of(client)}
    )
    assert response.status_code == 303, response.text
    page = Html((await client.get("/ui/")).text)
    return page.forms["/ui/sign-out"]["csrf_token"]


async def make_token(api: httpx.AsyncClient, role: str) -> str:
    response = await api.post("/api/v1/tokens", json={"name": f"{role}-person", "role": role})
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


async def status_of(api: httpx.AsyncClient, mailing_id: int) -> str:
    return str((await api.get(f"/api/v1/mailings/{mailing_id}")).json()["status"])


async def ui_audit(api: httpx.AsyncClient) -> list[tuple[str, str, int | None]]:
    entries = (await api.get("/api/v1/audit", params={"limit": 1000})).json()["items"]
    return sorted(
        (e["action"], e["actor"], e["object_id"]) for e in entries if e["detail"].get("via") == "ui"
    )


@pytest.mark.parametrize("path", ["/ui/", "/ui/mailings", "/ui/mailings/1", "/ui/mailings/rows"])
async def test_pages_need_a_session(ui: httpx.AsyncClient, path: str) -> None:
    response = await ui.get(path)
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/sign-in?next=" + path.replace("/", "%2F")
    # htmx polling with an expired session: the whole page goes to the sign-in page
    polled = await ui.get(path, headers={"HX-Request": "true"})
    assert polled.headers["HX-Redirect"].startswith("/ui/sign-in?next=")


async def test_sign_in_with_a_good_and_a_bad_token(ui: httpx.AsyncClient) -> None:
    csrf = await csrf_of(ui)
    bad = await ui.post("/ui/sign-in", data={"token": "not-a-token", "csrf_token": csrf})
    assert bad.status_code == 401
    assert "That token is not valid" in bad.text
    assert (await ui.get("/ui/")).status_code == 303  # still signed out

    good = await ui.post(
        "/ui/sign-in", data={"token": TOKEN, "csrf_token": csrf, "next": "/ui/mailings"}
    )
    assert good.status_code == 303
    assert good.headers["location"] == "/ui/mailings"
    cookie = good.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "secure" not in cookie  # plain http: a Secure cookie would never come back
    assert TOKEN not in good.headers["set-cookie"]  # the session holds the token's hash only

    page = await ui.get("/ui/")
    assert page.status_code == 200
    assert "config#1" in page.text
    assert 'class="role">admin<' in page.text
    nav = [e["href"] for e in Html(page.text).with_attr("href")]
    assert {"/ui/", "/ui/mailings", "/docs"} <= set(nav)

    # Somewhere else only a path of the UI is followed after signing in.
    elsewhere = await ui.post(
        "/ui/sign-in",
        data={"token": TOKEN, "csrf_token": await csrf_of(ui), "next": "https://evil.test/"},
    )
    assert elsewhere.headers["location"] == "/ui/"

    # Signing in again starts a new session, with a new CSRF token.
    assert Html(page.text).forms["/ui/sign-out"]["csrf_token"] != await csrf_of(ui)
    csrf = Html((await ui.get("/ui/")).text).forms["/ui/sign-out"]["csrf_token"]
    out = await ui.post("/ui/sign-out", data={"csrf_token": csrf})
    assert out.status_code == 303
    assert (await ui.get("/ui/")).status_code == 303


async def test_the_cookie_is_secure_over_https(app: Any) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://notiflow.test") as client:
        csrf = await csrf_of(client)
        response = await client.post("/ui/sign-in", data={"token": TOKEN, "csrf_token": csrf})
    assert response.status_code == 303
    assert "secure" in response.headers["set-cookie"].lower()


async def test_a_revoked_token_ends_its_session(
    api: httpx.AsyncClient, ui: httpx.AsyncClient
) -> None:
    token = await make_token(api, "read")
    await sign_in(ui, token)
    assert (await ui.get("/ui/")).status_code == 200
    token_id = (await api.get("/api/v1/tokens")).json()["items"][0]["id"]
    assert (await api.delete(f"/api/v1/tokens/{token_id}")).status_code == 204
    assert (await ui.get("/ui/")).status_code == 303


async def test_csrf_is_refused_without_the_session_token(
    api: httpx.AsyncClient, ui: httpx.AsyncClient, clock: Any
) -> None:
    mailing = await make_mailing(api, clock(), start_in=timedelta(0))
    csrf = await sign_in(ui)
    url = f"/ui/mailings/{mailing['id']}/pause"
    for data, headers in (
        ({}, {}),  # none
        ({"csrf_token": "forged"}, {}),
        ({}, {"X-CSRF-Token": "forged"}),
    ):
        refused = await ui.post(url, data=data, headers=headers)
        assert refused.status_code == 403
        assert "did not come from this site" in refused.text
    assert await status_of(api, mailing["id"]) == "running"
    # Signing in needs it too (no logging someone in to an attacker's session).
    signed_out = httpx.AsyncClient(transport=ui._transport, base_url=BASE)
    async with signed_out:
        await signed_out.get("/ui/sign-in")
        assert (await signed_out.post("/ui/sign-in", data={"token": TOKEN})).status_code == 403
    # The header (htmx sends it) works as the form field does.
    done = await ui.post(url, headers={"X-CSRF-Token": csrf})
    assert done.status_code == 303
    assert await status_of(api, mailing["id"]) == "paused"


def _action_buttons(html: str) -> set[str]:
    return {e["value"] for e in Html(html).with_attr("value") if e.get("name") == "action"}


async def test_the_role_decides_what_is_shown_and_allowed(
    api: httpx.AsyncClient, app: Any, clock: Any
) -> None:
    running = await make_mailing(api, clock(), start_in=timedelta(0))
    page_url = f"/ui/mailings/{running['id']}"
    transport = httpx.ASGITransport(app=app)
    shown = {}
    for role in ("read", "send", "admin"):
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            csrf = await sign_in(client, await make_token(api, role))
            page = await client.get(page_url)
            assert page.status_code == 200
            shown[role] = _action_buttons(page.text)
            if role == "read":
                for action in ("pause", "cancel", "delete"):
                    refused = await client.post(f"{page_url}/{action}", data={"csrf_token": csrf})
                    assert refused.status_code == 403
                    assert "role is read; this needs" in refused.text
            if role == "send":  # DELETE needs admin, in the UI as in the API
                refused = await client.post(f"{page_url}/delete", data={"csrf_token": csrf})
                assert refused.status_code == 403
    assert shown == {
        "read": set(),
        "send": {"pause", "cancel"},
        "admin": {"pause", "cancel", "delete"},
    }
    assert await status_of(api, running["id"]) == "running"
    assert await ui_audit(api) == []


async def test_actions_change_the_mailing_and_are_audited(
    api: httpx.AsyncClient, ui: httpx.AsyncClient, clock: Any
) -> None:
    mailing = await make_mailing(api, clock())  # starts in an hour
    mailing_id = mailing["id"]
    csrf = await sign_in(ui)
    page_url = f"/ui/mailings/{mailing_id}"
    assert _action_buttons((await ui.get(page_url)).text) == {"start", "cancel", "delete"}
    confirmed = {
        e["action"].rsplit("/", 1)[1]
        for e in Html((await ui.get(page_url)).text).with_attr("data-confirm")
    }
    assert confirmed == {"cancel", "delete"}  # destructive actions ask first

    for action, status in (
        ("start", "running"),
        ("pause", "paused"),
        ("resume", "running"),
        ("cancel", "cancelled"),
    ):
        response = await ui.post(f"{page_url}/{action}", data={"csrf_token": csrf})
        assert response.status_code == 303, response.text
        assert response.headers["location"] == page_url
        assert await status_of(api, mailing_id) == status
        page = await ui.get(page_url)
        assert Html(page.text).text("mailing-status") == status
        assert "was " in page.text  # the message of what was done

    deleted = await ui.post(f"{page_url}/delete", data={"csrf_token": csrf})
    assert deleted.status_code == 303
    assert deleted.headers["location"] == "/ui/mailings"
    assert (await api.get(f"/api/v1/mailings/{mailing_id}")).status_code == 404
    assert f"Mailing {mailing_id} was deleted." in (await ui.get("/ui/mailings")).text

    assert await ui_audit(api) == sorted(
        ("mailing." + verb, "config#1", mailing_id)
        for verb in ("start", "pause", "resume", "cancel", "delete")
    )


async def test_a_refused_action_shows_the_services_reason(
    api: httpx.AsyncClient, ui: httpx.AsyncClient, clock: Any
) -> None:
    mailing = await make_mailing(api, clock())  # scheduled: it cannot be paused or resumed
    csrf = await sign_in(ui)
    page_url = f"/ui/mailings/{mailing['id']}"
    response = await ui.post(f"{page_url}/resume", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == page_url
    page = await ui.get(page_url)
    api_answer = await api.post(f"/api/v1/mailings/{mailing['id']}/resume")
    assert api_answer.status_code == 409
    assert 'class="flash error"' in page.text
    assert api_answer.json()["detail"] in html.unescape(page.text)  # the API's very words
    assert await status_of(api, mailing["id"]) == "scheduled"
    assert await ui_audit(api) == []


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/ui/mailings/999", 404),
        ("GET", "/ui/mailings/abc", 404),
        ("GET", "/ui/mailings/99999999999999999999999", 404),
        ("GET", "/ui/mailings/0", 404),
        ("GET", "/ui/mailings/999/messages.csv", 404),
        ("POST", "/ui/mailings/999/pause", 404),
        ("POST", "/ui/mailings/999/delete", 404),
        ("POST", "/ui/mailings/1/explode", 404),
        ("GET", "/ui/no-such-page", 404),
        ("GET", "/ui/mailings?offset=-1", 422),
        ("GET", "/ui/mailings?status=bogus", 422),
    ],
)
async def test_bad_input_is_an_error_page_not_a_500(
    ui: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    csrf = await sign_in(ui)
    response = await ui.request(
        method, path, data={"csrf_token": csrf} if method == "POST" else None
    )
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>" in response.text


async def test_the_api_keeps_its_json_errors(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/mailings/999")
    assert response.status_code == 404
    assert response.json() == {"detail": "mailing 999 not found", "errors": []}


@pytest.fixture
def live_clock() -> LiveClock:
    return LiveClock()


@pytest.fixture
def clock(live_clock: LiveClock) -> LiveClock:
    return live_clock


AUDIENCE = 60  # at 50 ms a message, two at a time: 1.5 s of sending to look at


async def test_pages_show_a_mailing_running_and_then_done(
    app: Any,
    api: httpx.AsyncClient,
    ui: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    await sign_in(ui)
    empty = Html((await ui.get("/ui/")).text)
    assert "No worker is running" in empty.text("provider-state")

    await import_clients(api, AUDIENCE)
    provider.configure(latency_ms=50)
    await start_engine(send_concurrency=2)
    mailing = await create_mailing(api, clock)
    mailing_id = mailing["id"]

    # While it runs, the list's table polls itself.
    rows = Html((await ui.get("/ui/mailings/rows")).text)
    polling = [e for e in rows.with_attr("hx-trigger") if e.get("id") == "mailing-rows"]
    assert polling, "the table does not poll while a mailing runs"
    assert polling[0]["hx-get"].startswith("/ui/mailings/rows")

    fragment = Html((await ui.get(f"/ui/mailings/{mailing_id}/counts")).text)
    polling = [e for e in fragment.with_attr("hx-trigger") if e.get("id") == "mailing-counts"]
    assert polling, "the mailing's counts do not poll while it runs"
    assert polling[0]["hx-get"] == f"/ui/mailings/{mailing_id}/counts"

    await wait_for(lambda: completed(api, mailing_id))

    fragment = Html((await ui.get(f"/ui/mailings/{mailing_id}/counts")).text)
    assert fragment.with_attr("hx-trigger") == []
    assert f"sent {AUDIENCE}" in fragment.text("counts")

    # Once none runs, the fragment it swaps in polls no more.
    rows = Html((await ui.get("/ui/mailings/rows")).text)
    assert rows.with_attr("hx-trigger") == []
    listing = await ui.get("/ui/mailings")
    row = Html(listing.text).with_attr("data-mailing")
    assert [e["data-mailing"] for e in row] == [str(mailing_id)]
    assert 'value="100"' in listing.text  # the progress bar is full
    assert ">completed<" in listing.text
    assert f"{AUDIENCE} sent" in listing.text
    assert f"{AUDIENCE // 5}/min" in listing.text  # all of them in the last five minutes

    dashboard = Html((await ui.get("/ui/")).text)
    assert dashboard.text("sent-today") == str(AUDIENCE)
    assert dashboard.text("failed-today") == "0"
    assert dashboard.text("provider-state") == "ok"
    by_status = {e["data-status"]: e for e in dashboard.with_attr("data-status")}
    assert set(by_status) == {"scheduled", "running", "paused", "completed", "cancelled"}
    assert "completed 1" in dashboard.text("mailings-by-status")

    detail = Html((await ui.get(f"/ui/mailings/{mailing_id}")).text)
    assert detail.text("mailing-status") == "completed"
    counts = detail.text("counts")
    assert f"total {AUDIENCE}" in counts
    assert f"sent {AUDIENCE}" in counts
    assert detail.text("messages").count("sent") >= 50  # a page of them
    # paging and the status filter
    failed_only = Html((await ui.get(f"/ui/mailings/{mailing_id}?status=failed")).text)
    assert "messages" not in failed_only.text_of
    second = await ui.get(f"/ui/mailings/{mailing_id}?offset=30")
    assert Html(second.text).text("messages").count("7900") == AUDIENCE - 30

    export = await ui.get(f"/ui/mailings/{mailing_id}/messages.csv")
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    api_export = await api.get(f"/api/v1/mailings/{mailing_id}/messages", params={"format": "csv"})
    assert export.text == api_export.text
    assert len(export.text.strip().splitlines()) == AUDIENCE + 1

    # An API process without an engine of its own shows the provider as the workers see it.
    engine, app.state.engine = app.state.engine, None
    workers = Html((await ui.get("/ui/")).text)
    assert engine.worker in workers.text("workers")
    assert "provider-state" not in workers.text_of
    assert engine.worker in workers.text("provider-workers")
    assert "ok" in workers.text("provider-workers")


async def test_sessions_survive_a_restart_and_follow_the_secret(settings: Any, clock: Any) -> None:
    """Without NOTIFLOW_SESSION_SECRET the key is generated once and stored: a new process on
    the same database accepts the sessions of the old one. A different secret does not."""
    from notiflow.app import create_app

    apps = [create_app(settings, clock=clock) for _ in range(2)]
    other = create_app(
        settings.model_copy(update={"session_secret": SecretStr("s" * 40)}), clock=clock
    )
    try:
        first = httpx.AsyncClient(transport=httpx.ASGITransport(app=apps[0]), base_url=BASE)
        async with first:
            await sign_in(first)
            cookies = dict(first.cookies)
        for app, expected in ((apps[1], 200), (other, 303)):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url=BASE, cookies=cookies
            ) as client:
                assert (await client.get("/ui/")).status_code == expected
    finally:
        for app in (*apps, other):
            await app.state.db_engine.dispose()


def _field_errors(html_text: str) -> dict[str, str]:
    return {
        e["data-field"]: e.get("id", "")
        for e in Html(html_text).with_attr("data-field")
        if e["tag"] == "p"
    }


async def test_create_a_mailing_with_the_form(
    api: httpx.AsyncClient, ui: httpx.AsyncClient, clock: Any
) -> None:
    csrf = await sign_in(ui)
    assert (await ui.get("/ui/mailings/new")).status_code == 200
    start = clock() + timedelta(days=1)
    form = {
        "csrf_token": csrf,
        "text": "Hello from the form",
        "start_time": start.strftime("%Y-%m-%dT%H:%M"),
        "end_time": (start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        "operator_codes": "900, 916",
        "tags": "vip",
        "window_start": "09:00",
        "window_end": "21:00",
    }
    response = await ui.post("/ui/mailings/new", data=form)
    assert response.status_code == 303, response.text
    mailing_id = int(response.headers["location"].rsplit("/", 1)[1])
    created = (await api.get(f"/api/v1/mailings/{mailing_id}")).json()
    assert created["text"] == "Hello from the form"
    assert created["filter"] == {"operator_codes": ["900", "916"], "tags": ["vip"]}
    assert created["send_window"] == {"start": "09:00", "end": "21:00"}
    assert created["status"] == "scheduled"
    assert await ui_audit(api) == [("mailing.create", "config#1", mailing_id)]


async def test_the_form_shows_the_apis_errors_next_to_the_fields(
    api: httpx.AsyncClient, ui: httpx.AsyncClient, clock: Any
) -> None:
    csrf = await sign_in(ui)
    now = clock()
    bad = {
        "text": "   ",
        "start_time": (now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        "end_time": "tomorrow",
        "operator_codes": "9x",
        "tags": "",
        "window_start": "25:00",
        "window_end": "",
    }
    response = await ui.post("/ui/mailings/new", data={"csrf_token": csrf, **bad})
    assert response.status_code == 422
    errors = _field_errors(response.text)
    assert {"text", "end_time", "operator_codes", "window_start"} <= set(errors)
    assert 'value="9x"' in response.text  # what was typed stays in the form
    # The same body through the API is refused for the same fields.
    api_answer = await api.post(
        "/api/v1/mailings",
        json={
            "text": bad["text"],
            "start_time": bad["start_time"],
            "end_time": bad["end_time"],
            "filter": {"operator_codes": ["9x"], "tags": []},
            "send_window": {"start": "25:00"},  # an empty field is a missing one
        },
    )
    assert api_answer.status_code == 422
    for error in api_answer.json()["errors"]:
        assert error["message"] in html.unescape(response.text)
    # An empty start or end time is "required", as a missing one is in the API.
    empty = await ui.post(
        "/ui/mailings/new",
        data={"csrf_token": csrf, "text": "hi", "start_time": "", "end_time": ""},
    )
    assert empty.status_code == 422
    assert set(_field_errors(empty.text)) == {"start_time", "end_time"}
    assert html.unescape(empty.text).count(">required<") == 2
    # An end before the start is the service's rule: shown too, nothing created.
    order = {**bad, "text": "hi", "operator_codes": "", "window_start": ""}
    order["end_time"] = (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    refused = await ui.post("/ui/mailings/new", data={"csrf_token": csrf, **order})
    assert refused.status_code == 422
    assert _field_errors(refused.text)
    assert (await api.get("/api/v1/mailings")).json()["total"] == 0
    assert await ui_audit(api) == []


async def test_edit_follows_the_rules_of_a_running_mailing(
    api: httpx.AsyncClient, ui: httpx.AsyncClient, clock: Any
) -> None:
    mailing = await make_mailing(api, clock(), start_in=timedelta(0), text="first words")
    mailing_id = mailing["id"]
    csrf = await sign_in(ui)
    page = Html((await ui.get(f"/ui/mailings/{mailing_id}/edit")).text)
    values = dict(page.forms[f"/ui/mailings/{mailing_id}/edit"])
    assert values["csrf_token"] == csrf  # the form carries the session's token
    textarea = page.text("text")
    assert textarea == "first words"

    form = {**values, "text": "other words"}
    refused = await ui.post(f"/ui/mailings/{mailing_id}/edit", data=form)
    assert refused.status_code == 409
    assert set(_field_errors(refused.text)) == {"text"}
    assert (await api.get(f"/api/v1/mailings/{mailing_id}")).json()["text"] == "first words"

    later = clock() + timedelta(hours=5)
    form = {**values, "text": "first words", "end_time": later.strftime("%Y-%m-%dT%H:%M")}
    saved = await ui.post(f"/ui/mailings/{mailing_id}/edit", data=form)
    assert saved.status_code == 303, saved.text
    stored = (await api.get(f"/api/v1/mailings/{mailing_id}")).json()
    assert stored["end_time"] == later.strftime("%Y-%m-%dT%H:%M:00Z")
    assert await ui_audit(api) == [("mailing.replace", "config#1", mailing_id)]


async def test_a_read_token_cannot_create_or_edit(
    api: httpx.AsyncClient, ui: httpx.AsyncClient, clock: Any
) -> None:
    mailing = await make_mailing(api, clock())
    csrf = await sign_in(ui, await make_token(api, "read"))
    assert "/ui/mailings/new" not in (await ui.get("/ui/mailings")).text
    assert "/edit" not in (await ui.get(f"/ui/mailings/{mailing['id']}")).text
    assert (await ui.get("/ui/mailings/new")).status_code == 403
    assert (await ui.get(f"/ui/mailings/{mailing['id']}/edit")).status_code == 403
    form = {"csrf_token": csrf, "text": "x", "start_time": "2030-01-01T00:00"}
    assert (await ui.post("/ui/mailings/new", data=form)).status_code == 403
    assert (await api.get("/api/v1/mailings")).json()["total"] == 1


async def test_no_database_is_a_503_not_a_500() -> None:
    """The first page needs the session key from the database: when it cannot be read (here:
    nothing listens at the database's port), the answer says so."""
    from notiflow.app import create_app

    app = create_app(
        Settings(database_url="postgresql://postgres@127.0.0.1:9/none", _env_file=None),
        clock=LiveClock(),
    )
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            response = await client.get("/ui/sign-in")
        assert response.status_code == 503
        assert "database is unavailable" in response.text
    finally:
        await app.state.db_engine.dispose()


async def test_a_poll_leaves_the_message_for_the_page_and_updates_the_heading(
    api: httpx.AsyncClient, ui: httpx.AsyncClient, clock: Any
) -> None:
    """A poll of the counts (htmx) that lands between an action and the page it redirects to
    leaves the action's message to that page; the poll's answer carries the status for the
    page's heading too (an out-of-band swap), and only a poll does."""
    mailing = await make_mailing(api, clock(), start_in=timedelta(0))
    mailing_id = mailing["id"]
    csrf = await sign_in(ui)
    page_url = f"/ui/mailings/{mailing_id}"
    paused = await ui.post(f"{page_url}/pause", data={"csrf_token": csrf})
    assert paused.status_code == 303, paused.text
    reason = (await api.get(f"/api/v1/mailings/{mailing_id}")).json()["paused_reason"]
    assert reason == "paused in the admin UI by config#1"  # who paused it, as the audit says

    polled = await ui.get(f"{page_url}/counts", headers={"HX-Request": "true"})
    assert polled.status_code == 200
    heading = [e for e in Html(polled.text).elements if e.get("id") == "mailing-status"]
    assert heading == [
        {
            "tag": "span",
            "class": "badge status-paused",
            "id": "mailing-status",
            "hx-swap-oob": "true",
        }
    ]
    page = await ui.get(page_url)
    assert f"Mailing {mailing_id} was paused." in page.text
    assert [e for e in Html(page.text).elements if e.get("id") == "mailing-status"] == [
        {"tag": "span", "class": "badge status-paused", "id": "mailing-status"}
    ]


async def test_a_poll_brings_the_buttons_of_the_mailings_status(
    app: Any, api: httpx.AsyncClient, ui: httpx.AsyncClient, clock: Any
) -> None:
    """The page's buttons follow its mailing (an out-of-band swap of each poll): once it is
    paused the page offers Resume, not Pause; once it ended, neither Pause nor Cancel."""
    mailing_id = (await make_mailing(api, clock(), start_in=timedelta(0)))["id"]
    csrf = await sign_in(ui)
    page_url = f"/ui/mailings/{mailing_id}"

    def buttons(text: str) -> list[str]:
        found = Html(text)
        return [e["value"] for e in found.elements if e["tag"] == "button" and "value" in e]

    assert buttons((await ui.get(page_url)).text) == ["pause", "cancel", "delete"]
    assert (await api.post(f"/api/v1/mailings/{mailing_id}/pause")).status_code == 200
    polled = await ui.get(f"{page_url}/counts", headers={"HX-Request": "true"})
    actions = [e for e in Html(polled.text).elements if e.get("id") == "mailing-actions"]
    assert actions == [
        {"tag": "div", "class": "actions", "id": "mailing-actions", "hx-swap-oob": "true"}
    ]
    assert buttons(polled.text) == ["resume", "cancel", "delete"]
    cancelled = await ui.post(f"{page_url}/cancel", data={"csrf_token": csrf})
    assert cancelled.status_code == 303
    polled = await ui.get(f"{page_url}/counts", headers={"HX-Request": "true"})
    assert buttons(polled.text) == ["delete"]
    # A role that may do none of it gets no buttons, and the empty row is hidden.
    read_ui = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
    async with read_ui:
        await sign_in(read_ui, await make_token(api, "read"))
        polled = await read_ui.get(f"{page_url}/counts", headers={"HX-Request": "true"})
    assert buttons(polled.text) == []
    row = [e for e in Html(polled.text).elements if e.get("id") == "mailing-actions"]
    assert len(row) == 1
    assert row[0]["hidden"] == ""
