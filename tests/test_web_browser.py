"""/docs and /redoc in Chromium, against a real ``notiflow serve``: they render the API's
operations and every request they make goes to the server itself; / leads to the admin UI."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Page, expect

from notiflow.web.static import vendored
from tests.browser_support import HOSTNAME, BrowserLog, NotiflowServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

# ReDoc 2 draws this in its menu, whatever its options; the page's CSP refuses it (notiflow.web).
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
HOSTS = ["127.0.0.1", HOSTNAME]


def _assert_self_contained(log: BrowserLog, host: str, *expected: str) -> None:
    assert log.requests, "the request log is empty"
    assert log.hosts() == {host}, f"requests left {host}: {log.requests}"
    for path in expected:
        assert path in log.paths(), f"{path} was not requested: {log.requests}"
    assert not log.errors, log.errors


@pytest.mark.parametrize("host", HOSTS)
async def test_swagger_ui_renders_the_operations_offline(
    page: Page, browser_log: BrowserLog, shared_server: NotiflowServer, host: str
) -> None:
    await page.goto(f"{shared_server.url_at(host)}/docs")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Notiflow")
    await expect(page.locator("#operations-tag-clients")).to_be_visible()
    list_clients = page.locator(
        ".opblock-get", has=page.locator('.opblock-summary-path[data-path="/api/v1/clients"]')
    )
    await expect(list_clients).to_be_visible()
    await expect(list_clients.locator(".opblock-summary-method")).to_have_text("GET")

    await page.wait_for_load_state("networkidle")
    _assert_self_contained(
        browser_log,
        host,
        "/docs",
        "/openapi.json",
        vendored("swagger-ui-dist", "swagger-ui-bundle.js"),
        vendored("swagger-ui-dist", "swagger-ui.css"),
    )
    assert not browser_log.refused, browser_log.refused
    assert not browser_log.console_errors, browser_log.console_errors


@pytest.mark.parametrize("host", HOSTS)
async def test_redoc_renders_the_operations_offline(
    page: Page, browser_log: BrowserLog, shared_server: NotiflowServer, host: str
) -> None:
    await page.goto(f"{shared_server.url_at(host)}/redoc")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Notiflow")
    await expect(page.get_by_role("menuitem", name="clients", exact=True)).to_be_visible()
    list_clients = page.locator(
        "[data-section-id='tag/clients/operation/list_clients_api_v1_clients_get']"
    )
    await expect(list_clients.get_by_role("heading", level=2)).to_contain_text("List clients")
    await expect(list_clients.locator(".http-verb").first).to_have_text("get")
    await expect(list_clients).to_contain_text("/api/v1/clients")

    await page.wait_for_load_state("networkidle")
    _assert_self_contained(
        browser_log,
        host,
        "/redoc",
        "/openapi.json",
        vendored("redoc", "redoc.standalone.js"),
    )
    # What the page tried to load from elsewhere, the browser refused without a request.
    assert set(browser_log.refused) <= {REDOCLY_LOGO}, browser_log.refused


async def test_the_root_leads_to_the_admin_ui(
    page: Page, browser_log: BrowserLog, shared_server: NotiflowServer
) -> None:
    """``/`` answers 307 to ``/ui/``, which (signed out) leads to the UI's sign-in page."""
    response = await page.goto(f"{shared_server.url}/")
    assert response is not None
    assert page.url.startswith(f"{shared_server.url}/ui/sign-in")
    chain = []
    request = response.request.redirected_from
    while request is not None:
        chain.append(request)
        request = request.redirected_from
    first = chain[-1]
    assert first.url == f"{shared_server.url}/"
    first_response = await first.response()
    assert first_response is not None
    assert first_response.status == 307
    assert first_response.headers["location"].endswith("/ui/")
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()


async def test_the_log_sees_a_request_that_would_leave(page: Page, browser_log: BrowserLog) -> None:
    """The harness itself: a page that loads from a CDN shows up in the log (and is aborted)."""
    await page.set_content('<img src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/favicon.png">')
    await page.wait_for_load_state("networkidle")
    assert browser_log.requests == ["https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/favicon.png"]
    assert browser_log.hosts() == {"cdn.jsdelivr.net"}


async def test_swagger_ui_calls_the_api_with_a_token(
    page: Page, browser_log: BrowserLog, notiflow_server: NotiflowServer
) -> None:
    """Authorize with a token and "Try it out" GET /api/v1/clients: the answer lists the client
    made beforehand (on SQLite and on PostgreSQL); the page's CSP lets it call the API."""
    async with httpx.AsyncClient(
        base_url=notiflow_server.url,
        headers={"Authorization": f"Bearer {notiflow_server.token}"},
    ) as api:
        created = await api.post("/api/v1/clients", json={"phone": "79001234567", "tag": "vip"})
        assert created.status_code == 201, created.text

    await page.goto(f"{notiflow_server.url}/docs")
    await page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".modal-ux")
    await dialog.get_by_role("textbox").fill(notiflow_server.token)
    await dialog.get_by_role("button", name="Apply credentials").click()
    await expect(dialog.locator(".auth-container")).to_contain_text("Authorized")
    await dialog.get_by_role("button", name="Close").click()

    list_clients = page.locator("#operations-clients-list_clients_api_v1_clients_get")
    await list_clients.locator(".opblock-summary-control").click()
    await list_clients.get_by_role("button", name="Try it out").click()
    await list_clients.get_by_role("button", name="Execute").click()
    live = list_clients.locator(".live-responses-table .response")
    await expect(live.locator(".response-col_status")).to_have_text("200")
    await expect(live).to_contain_text("79001234567")

    assert browser_log.hosts() == {"127.0.0.1"}, browser_log.requests
    assert any("/api/v1/clients" in url for url in browser_log.requests)
    assert not browser_log.console_errors, browser_log.console_errors
