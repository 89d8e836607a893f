"""The admin UI's client pages at /ui/clients, through real HTTP requests to the app, on SQLite
and PostgreSQL: the list with its search and paging, create and edit with the API's errors next
to the fields, delete, opt-out and opt-in, the CSV import with its row-level errors, roles, CSRF
and the audit entries of UI writes."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from notiflow.messages.repository import NewMessage
from tests.helpers import make_client, make_mailing, seed_messages
from tests.test_admin_ui import BASE, Html, make_token, sign_in, ui_audit


@pytest.fixture
async def ui(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client: cookies, no bearer token."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield client


async def api_import(api: httpx.AsyncClient, body: str) -> dict[str, Any]:
    response = await api.post(
        "/api/v1/clients/import", content=body, headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def client_of(api: httpx.AsyncClient, phone: str) -> dict[str, Any] | None:
    items = (await api.get("/api/v1/clients", params={"phone": phone})).json()["items"]
    return items[0] if items else None


def rows(page: str) -> list[str]:
    """The client ids of a list page's table, in order."""
    return [e["data-client"] for e in Html(page).with_attr("data-client")]


def field_errors(page: str) -> dict[str, list[str]]:
    """The errors shown next to each field (``""``: the whole form)."""
    found: dict[str, list[str]] = {}
    parsed = Html(page)
    for element in parsed.with_attr("data-field"):
        if element["tag"] == "p":
            found.setdefault(element["data-field"], []).append(element.get("id", ""))
    return found


def error_text(page: str) -> str:
    return html.unescape(page)


def upload(csrf: str, content: bytes, name: str = "clients.csv", **fields: str) -> dict[str, Any]:
    return {
        "data": {"csrf_token": csrf, **fields},
        "files": {"file": (name, content, "text/csv")},
    }


@pytest.mark.parametrize(
    "path", ["/ui/clients", "/ui/clients/new", "/ui/clients/import", "/ui/clients/1"]
)
async def test_pages_need_a_session(ui: httpx.AsyncClient, path: str) -> None:
    response = await ui.get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/sign-in?next=")


async def test_the_nav_links_to_the_clients(ui: httpx.AsyncClient) -> None:
    await sign_in(ui)
    links = [e["href"] for e in Html((await ui.get("/ui/")).text).with_attr("href")]
    assert links.index("/ui/mailings") < links.index("/ui/clients") < links.index("/docs")
    page = await ui.get("/ui/clients")
    assert page.status_code == 200
    current = Html(page.text).with_attr("aria-current")
    assert [e["href"] for e in current] == ["/ui/clients"]


async def test_list_search_and_paging(api: httpx.AsyncClient, ui: httpx.AsyncClient) -> None:
    # 60 clients: operator 900 and tag vip for the even ones, 916 and no tag for the odd ones.
    body = "phone,operator_code,tag\n" + "".join(
        f"7900{i:07d},{'900' if i % 2 == 0 else '916'},{'vip' if i % 2 == 0 else ''}\n"
        for i in range(60)
    )
    assert (await api_import(api, body))["created"] == 60
    opted = await client_of(api, "79000000007")
    assert opted is not None
    assert (await api.post(f"/api/v1/clients/{opted['id']}/opt-out")).status_code == 200
    await sign_in(ui)

    first = await ui.get("/ui/clients")
    assert first.status_code == 200
    assert rows(first.text) == [str(i) for i in range(1, 51)]
    assert "1–50 of 60" in first.text
    assert 'href="?offset=50"' in first.text
    second = await ui.get("/ui/clients", params={"offset": 50})
    assert rows(second.text) == [str(i) for i in range(51, 61)]
    # The opt-out state is in the list.
    assert first.text.count('class="badge opted-out"') == 1

    # Filters are the API's, and the pager keeps them.
    vip = await ui.get("/ui/clients", params={"tag": "vip"})
    assert len(rows(vip.text)) == 30
    api_vip = (await api.get("/api/v1/clients", params={"tag": "vip", "limit": 100})).json()
    assert rows(vip.text) == [str(c["id"]) for c in api_vip["items"]]
    odd = await ui.get("/ui/clients", params={"operator_code": "916", "tag": ""})
    assert len(rows(odd.text)) == 30
    assert all(int(i) % 2 == 0 for i in rows(odd.text))  # ids from 1: phone i is id i + 1

    # A whole phone, as people write it, is found exactly; digits alone are a part of one.
    exact = await ui.get("/ui/clients", params={"phone": "+7 (900) 000-00-07"})
    assert rows(exact.text) == [str(opted["id"])]
    assert "opted out" in exact.text
    part = await ui.get("/ui/clients", params={"phone": "000-005"})
    assert rows(part.text) == [str(i + 1) for i in (5, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59)]
    paged = await ui.get("/ui/clients", params={"phone": "7900", "tag": "vip"})
    assert "1–30 of 30" not in paged.text  # 30 fit on a page: no pager
    assert len(rows(paged.text)) == 30
    none = await ui.get("/ui/clients", params={"phone": "123456789"})
    assert rows(none.text) == []
    assert "No client matches this search." in none.text

    # A filter the API would refuse shows its error next to its field, not an error page.
    bad = await ui.get("/ui/clients", params={"operator_code": "9x", "phone": "abc"})
    assert bad.status_code == 422
    assert set(field_errors(bad.text)) == {"operator_code", "phone"}
    assert 'value="9x"' in bad.text


async def test_the_pager_keeps_the_search(api: httpx.AsyncClient, ui: httpx.AsyncClient) -> None:
    body = "phone,tag\n" + "".join(f"7916{i:07d},{'gold' if i < 55 else ''}\n" for i in range(70))
    await api_import(api, body)
    await sign_in(ui)
    first = await ui.get("/ui/clients", params={"tag": "gold", "phone": "7916"})
    assert "1–50 of 55" in first.text
    links = [e["href"] for e in Html(first.text).with_attr("href") if "offset=" in e["href"]]
    assert links == ["?phone=7916&tag=gold&offset=50"]
    second = await ui.get("/ui/clients" + links[0])
    assert len(rows(second.text)) == 5
    assert "51–55 of 55" in second.text


async def test_the_api_searches_by_part_of_a_phone(api: httpx.AsyncClient) -> None:
    """GET /api/v1/clients?phone_contains=: the service's filter the UI searches with."""
    for phone in ("79001234567", "79161234500", "79250000000"):
        await make_client(api, phone)
    found = await api.get("/api/v1/clients", params={"phone_contains": "(123) 45"})
    assert [c["phone"] for c in found.json()["items"]] == ["79001234567", "79161234500"]
    assert found.json()["total"] == 2
    both = await api.get("/api/v1/clients", params={"phone_contains": "4567", "tag": ""})
    assert [c["phone"] for c in both.json()["items"]] == ["79001234567"]
    # LIKE's wildcards are digits' strangers: refused as input, never a pattern.
    for value in ("12%", "_", "abc", "1" * 12):
        refused = await api.get("/api/v1/clients", params={"phone_contains": value})
        assert refused.status_code == 422, value
        assert refused.json()["errors"][0]["field"] == "query.phone_contains"
    assert (await api.get("/api/v1/clients", params={"phone_contains": ""})).json()["total"] == 3


async def test_create_shows_the_apis_errors_next_to_the_fields(
    api: httpx.AsyncClient, ui: httpx.AsyncClient
) -> None:
    csrf = await sign_in(ui)
    assert (await ui.get("/ui/clients/new")).status_code == 200
    bad = {"phone": "12345", "operator_code": "9x", "tag": "t" * 256, "timezone": "Mars/Base"}
    response = await ui.post("/ui/clients/new", data={"csrf_token": csrf, **bad})
    assert response.status_code == 422
    assert set(field_errors(response.text)) == {"phone", "operator_code", "tag", "timezone"}
    assert 'value="9x"' in response.text  # what was typed stays in the form
    api_answer = await api.post("/api/v1/clients", json=bad)
    assert api_answer.status_code == 422
    for error in api_answer.json()["errors"]:
        assert error["message"] in error_text(response.text)  # the API's very words

    missing = await ui.post("/ui/clients/new", data={"csrf_token": csrf, "phone": ""})
    assert missing.status_code == 422
    assert set(field_errors(missing.text)) == {"phone"}
    assert ">required<" in missing.text

    created = await ui.post(
        "/ui/clients/new",
        data={"csrf_token": csrf, "phone": "8 (916) 555-44-33", "tag": "vip", "timezone": ""},
    )
    assert created.status_code == 303, created.text
    client_id = int(created.headers["location"].rsplit("/", 1)[1])
    stored = (await api.get(f"/api/v1/clients/{client_id}")).json()
    assert (stored["phone"], stored["operator_code"], stored["tag"], stored["timezone"]) == (
        "79165554433",
        "916",
        "vip",
        "UTC",
    )
    page = await ui.get(created.headers["location"])
    assert f"Client {client_id} (79165554433) was created." in page.text

    # A phone that is taken is the service's rule (409), shown next to the phone.
    taken = await ui.post("/ui/clients/new", data={"csrf_token": csrf, "phone": "79165554433"})
    assert taken.status_code == 409
    assert set(field_errors(taken.text)) == {"phone"}
    assert f"already belongs to client {client_id}" in taken.text
    assert (await api.get("/api/v1/clients")).json()["total"] == 1
    assert await ui_audit(api) == [("client.create", "config#1", client_id)]


async def test_edit_a_client(api: httpx.AsyncClient, ui: httpx.AsyncClient) -> None:
    client = await make_client(api, "79001112233", tag="old", timezone="Europe/Moscow")
    other = await make_client(api, "79004445566")
    csrf = await sign_in(ui)
    url = f"/ui/clients/{client['id']}"
    page = Html((await ui.get(url)).text)
    values = dict(page.forms[f"{url}/edit"])
    assert values == {
        "csrf_token": csrf,
        "phone": "79001112233",
        "operator_code": "900",
        "tag": "old",
        "timezone": "Europe/Moscow",
    }

    refused = await ui.post(f"{url}/edit", data={**values, "phone": other["phone"]})
    assert refused.status_code == 409
    assert set(field_errors(refused.text)) == {"phone"}
    invalid = await ui.post(f"{url}/edit", data={**values, "timezone": "+25:00"})
    assert invalid.status_code == 422
    assert set(field_errors(invalid.text)) == {"timezone"}
    assert (await api.get(f"/api/v1/clients/{client['id']}")).json()["tag"] == "old"

    saved = await ui.post(f"{url}/edit", data={**values, "tag": "", "timezone": "+03:00"})
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == url
    stored = (await api.get(f"/api/v1/clients/{client['id']}")).json()
    assert (stored["tag"], stored["timezone"]) == (None, "+03:00")
    assert f"Client {client['id']} was saved." in (await ui.get(url)).text
    assert await ui_audit(api) == [("client.replace", "config#1", client["id"])]


async def test_opt_out_opt_in_and_delete(
    app: Any, api: httpx.AsyncClient, ui: httpx.AsyncClient, clock: Any
) -> None:
    client = await make_client(api, "79007778899")
    mailing = await make_mailing(api, clock())
    await seed_messages(app, mailing["id"], [NewMessage(client_id=client["id"])], now=clock())
    csrf = await sign_in(ui)
    url = f"/ui/clients/{client['id']}"
    page = await ui.get(url)
    confirm = {
        e["action"].rsplit("/", 1)[1]: e["data-confirm"]
        for e in Html(page.text).with_attr("data-confirm")
    }
    assert set(confirm) == {"opt-out", "delete"}  # both ask first
    assert "messages not sent yet" in confirm["opt-out"]
    assert Html(page.text).text("client-state") == "receives mailings"

    out = await ui.post(f"{url}/opt-out", data={"csrf_token": csrf})
    assert out.status_code == 303
    stored = (await api.get(f"/api/v1/clients/{client['id']}")).json()
    assert stored["opted_out_at"] is not None
    messages = (await api.get(f"/api/v1/mailings/{mailing['id']}/messages")).json()["items"]
    assert [(m["status"], m["last_error"]) for m in messages] == [("cancelled", "client opted out")]
    page = await ui.get(url)
    assert Html(page.text).text("client-state") == "opted out"
    assert "opted out: it receives nothing more" in page.text
    assert {e["action"] for e in Html(page.text).with_attr("data-confirm")} == {f"{url}/delete"}

    back = await ui.post(f"{url}/opt-in", data={"csrf_token": csrf})
    assert back.status_code == 303
    assert (await api.get(f"/api/v1/clients/{client['id']}")).json()["opted_out_at"] is None

    deleted = await ui.post(f"{url}/delete", data={"csrf_token": csrf})
    assert deleted.status_code == 303
    assert deleted.headers["location"] == "/ui/clients"
    assert (await api.get(f"/api/v1/clients/{client['id']}")).status_code == 404
    assert "(79007778899) was deleted." in (await ui.get("/ui/clients")).text
    assert (await ui.post(f"{url}/delete", data={"csrf_token": csrf})).status_code == 404

    entries = (await api.get("/api/v1/audit", params={"limit": 100})).json()["items"]
    ui_entries = [e for e in entries if e["detail"].get("via") == "ui"]
    assert sorted((e["action"], e["object_id"]) for e in ui_entries) == sorted(
        ("client." + verb, client["id"]) for verb in ("opt-out", "opt-in", "delete")
    )
    assert all(e["route"].startswith("/api/v1/clients/{client_id}") for e in ui_entries)


BAD_ROW_CSV = (
    "phone;tag;timezone;name\n"
    "79001230001;vip;Europe/Moscow;Ann\n"
    "not-a-phone;vip;UTC;Bob\n"
    "79001230002;;+03:00;Cid\n"
    "\n"
    "79001230003;vip;Mars/Base;Dan\n"
    "79001230004;only-two-cells\n"
    "+7 900 123-00-05;;;Eve\n"
)


async def test_import_shows_what_was_imported_and_the_rejected_rows(
    api: httpx.AsyncClient, ui: httpx.AsyncClient
) -> None:
    csrf = await sign_in(ui)
    form = Html((await ui.get("/ui/clients/import")).text)
    assert set(form.forms["/ui/clients/import"]) == {"csrf_token", "file"}
    multipart = [e for e in form.elements if e.get("enctype") == "multipart/form-data"]
    assert multipart

    response = await ui.post(
        "/ui/clients/import", **upload(csrf, BAD_ROW_CSV.encode(), mode="merge")
    )
    assert response.status_code == 200, response.text
    page = Html(response.text)
    assert (page.text("import-created"), page.text("import-updated")) == ("3", "0")
    assert page.text("import-rejected") == "3"
    assert page.text("import-ignored") == "name"
    shown = [
        [cell.strip() for cell in line.split("|")]
        for line in _table_rows(response.text, "import-errors")
    ]
    # Exactly what the service reports: the same file through the API says the same.
    again = await api_import(api, BAD_ROW_CSV)
    assert (again["created"], again["updated"]) == (0, 3)
    expected = []
    for item in again["rejected"]:
        column, _, message = item["error"].partition(": ")
        if column in ("phone", "operator_code", "tag", "timezone", "opted_out"):
            expected.append([str(item["row"]), column, message])
        else:
            expected.append([str(item["row"]), "(whole row)", item["error"]])
    assert shown == expected
    assert [line[:2] for line in shown] == [["2", "phone"], ["4", "timezone"], ["5", "(whole row)"]]
    assert (await api.get("/api/v1/clients")).json()["total"] == 3
    assert await ui_audit(api) == [("client.import", "config#1", None)]


def _table_rows(page: str, table_id: str) -> list[str]:
    """Each body row of a table as its cells' texts joined by ``|``."""

    class Rows(Html):
        def __init__(self, text: str) -> None:
            self.lines: list[list[str]] = []
            self._in_table = self._in_body = False
            super().__init__(text)

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            super().handle_starttag(tag, attrs)
            if tag == "table" and dict(attrs).get("id") == table_id:
                self._in_table = True
            if self._in_table and tag == "tbody":
                self._in_body = True
            if self._in_body and tag == "tr":
                self.lines.append([])
            if self._in_body and tag == "td":
                self.lines[-1].append("")

        def handle_endtag(self, tag: str) -> None:
            super().handle_endtag(tag)
            if tag == "table":
                self._in_table = self._in_body = False

        def handle_data(self, data: str) -> None:
            super().handle_data(data)
            if self._in_body and self.lines and self.lines[-1]:
                self.lines[-1][-1] += data

    return ["|".join(cell.strip() for cell in line) for line in Rows(page).lines]


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"", "empty.csv", "the CSV body is empty"),
        (b"name,tag\nAnn,vip\n", "nophone.csv", "the CSV header must name a phone column"),
        (b"phone\n7900\xff\n", "latin1.csv", "the CSV body is not UTF-8 text"),
        (b'{"phone": 1}', "clients.json", "the JSON body must be an array of clients"),
        (b"[1, 2", "clients.json", "the body is not valid JSON"),
    ],
)
async def test_a_bad_file_is_a_clear_message(
    api: httpx.AsyncClient, ui: httpx.AsyncClient, content: bytes, name: str, message: str
) -> None:
    csrf = await sign_in(ui)
    response = await ui.post("/ui/clients/import", **upload(csrf, content, name))
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    shown = Html(response.text).text("import-error")
    assert shown.startswith(f"{name}: {message}")
    assert (await api.get("/api/v1/clients")).json()["total"] == 0
    assert await ui_audit(api) == []


async def test_an_import_without_a_file_asks_for_one(
    api: httpx.AsyncClient, ui: httpx.AsyncClient
) -> None:
    csrf = await sign_in(ui)
    response = await ui.post("/ui/clients/import", data={"csrf_token": csrf, "mode": "merge"})
    assert response.status_code == 422
    assert "Choose a CSV (or JSON) file" in response.text
    response = await ui.post("/ui/clients/import", **upload(csrf, b"phone\n", ""))
    assert response.status_code == 422
    assert await ui_audit(api) == []


async def test_a_json_file_and_replace_mode(api: httpx.AsyncClient, ui: httpx.AsyncClient) -> None:
    await make_client(api, "79001234567", tag="vip", timezone="Europe/Moscow")
    csrf = await sign_in(ui)
    content = b'[{"phone": "79001234567"}, {"phone": "79001234568", "tag": "new"}]'
    response = await ui.post(
        "/ui/clients/import", **upload(csrf, content, "clients.json", mode="replace")
    )
    assert response.status_code == 200, response.text
    page = Html(response.text)
    assert (page.text("import-created"), page.text("import-updated")) == ("1", "1")
    assert "Mode: replace." in response.text
    replaced = await client_of(api, "79001234567")
    assert replaced is not None
    assert (replaced["tag"], replaced["timezone"]) == (None, "UTC")  # the whole state, as in PUT


async def test_the_role_decides_what_is_shown_and_allowed(api: httpx.AsyncClient, app: Any) -> None:
    client = await make_client(api, "79001234567")
    url = f"/ui/clients/{client['id']}"
    transport = httpx.ASGITransport(app=app)
    shown: dict[str, set[str]] = {}
    for role in ("read", "send", "admin"):
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as browser:
            csrf = await sign_in(browser, await make_token(api, role))
            listing = Html((await browser.get("/ui/clients")).text)
            page = Html((await browser.get(url)).text)
            links = {e["href"] for e in listing.with_attr("href")}
            shown[role] = {
                *(e["value"] for e in page.with_attr("value") if e.get("name") == "action"),
                *(path.rsplit("/", 1)[1] for path in links & {"/ui/clients/new"}),
                *(path.rsplit("/", 1)[1] for path in links & {"/ui/clients/import"}),
                *(["edit"] if f"{url}/edit" in page.forms else []),
            }
            if role == "read":
                for path in ("/ui/clients/new", "/ui/clients/import"):
                    assert (await browser.get(path)).status_code == 403
                writes = [
                    ("/ui/clients/new", "send"),
                    (f"{url}/edit", "send"),
                    (f"{url}/opt-out", "send"),
                    (f"{url}/delete", "admin"),
                ]
                for path, needed in writes:
                    data = {"csrf_token": csrf, "phone": "79001234599"}
                    refused = await browser.post(path, data=data)
                    assert refused.status_code == 403, path
                    assert f"role is read; this needs {needed}" in refused.text
                refused = await browser.post(
                    "/ui/clients/import", **upload(csrf, b"phone\n79001234599\n")
                )
                assert refused.status_code == 403
            if role == "send":  # DELETE needs admin, in the UI as in the API
                refused = await browser.post(f"{url}/delete", data={"csrf_token": csrf})
                assert refused.status_code == 403
                assert "this needs admin" in refused.text
    assert shown == {
        "read": set(),
        "send": {"new", "import", "edit", "opt-out"},
        "admin": {"new", "import", "edit", "opt-out", "delete"},
    }
    assert (await api.get("/api/v1/clients")).json()["total"] == 1
    assert (await api.get(f"/api/v1/clients/{client['id']}")).json()["opted_out_at"] is None
    assert await ui_audit(api) == []


async def test_csrf_is_refused_without_the_session_token(
    api: httpx.AsyncClient, ui: httpx.AsyncClient
) -> None:
    client = await make_client(api, "79001234567")
    csrf = await sign_in(ui)
    url = f"/ui/clients/{client['id']}"
    for path in ("/ui/clients/new", f"{url}/edit", f"{url}/opt-out", f"{url}/delete"):
        for token in (None, "forged"):
            data = {"phone": "79001234599"} | ({"csrf_token": token} if token else {})
            refused = await ui.post(path, data=data)
            assert refused.status_code == 403, path
            assert "did not come from this site" in refused.text
    forged = await ui.post(
        "/ui/clients/import",
        data={"csrf_token": "forged"},
        files={"file": ("c.csv", b"phone\n79001234599\n", "text/csv")},
    )
    assert forged.status_code == 403
    assert (await api.get("/api/v1/clients")).json()["total"] == 1
    assert (await api.get(f"/api/v1/clients/{client['id']}")).json()["opted_out_at"] is None
    # With the token, the same upload is imported.
    done = await ui.post("/ui/clients/import", **upload(csrf, b"phone\n79001234599\n"))
    assert done.status_code == 200
    assert (await api.get("/api/v1/clients")).json()["total"] == 2


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/ui/clients/999", 404),
        ("GET", "/ui/clients/abc", 404),
        ("GET", "/ui/clients/0", 404),
        ("GET", "/ui/clients/99999999999999999999999", 404),
        ("POST", "/ui/clients/999/edit", 404),
        ("POST", "/ui/clients/999/opt-out", 404),
        ("POST", "/ui/clients/999/opt-in", 404),
        ("POST", "/ui/clients/999/delete", 404),
        ("GET", "/ui/clients?offset=-1", 422),
        ("GET", "/ui/clients?tag=" + "x" * 400, 422),
    ],
)
async def test_bad_input_is_an_error_page_not_a_500(
    ui: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    csrf = await sign_in(ui)
    response = await ui.request(
        method,
        path,
        data={"csrf_token": csrf, "phone": "79001234567"} if method == "POST" else None,
    )
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>" in response.text


async def test_the_import_takes_files_as_large_as_the_apis(
    settings: Any, clock: Any, api: httpx.AsyncClient
) -> None:
    """The upload has the API import's body limit (NOTIFLOW_IMPORT_MAX_BYTES), not the smaller
    one of every other request; over it, the answer names the setting (a 413, not a 500)."""
    from notiflow.app import create_app

    small = settings.model_copy(update={"request_max_bytes": 1024, "import_max_bytes": 16 * 1024})
    app = create_app(small, clock=clock)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE
        ) as client:
            csrf = await sign_in(client)
            body = "phone\n" + "".join(f"7900{i:07d}\n" for i in range(400))  # 4.8 KB
            done = await client.post("/ui/clients/import", **upload(csrf, body.encode()))
            assert done.status_code == 200, done.text
            assert Html(done.text).text("import-created") == "400"
            huge = await client.post("/ui/clients/import", **upload(csrf, body.encode() * 4))
            assert huge.status_code == 413
            assert huge.headers["content-type"].startswith("text/html")  # a page, not JSON
            assert "NOTIFLOW_IMPORT_MAX_BYTES" in huge.text
    finally:
        await app.state.db_engine.dispose()
    assert (await api.get("/api/v1/clients")).json()["total"] == 400
