"""The Settings page, Clone and the audience preview in Chromium, against a real ``notiflow
serve`` (on SQLite and on PostgreSQL): what htmx and the confirmations do in a real browser."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Dialog, Page, expect

from tests.browser_support import BrowserLog, NotiflowServer
from tests.helpers import iso

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def api(notiflow_server: NotiflowServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=notiflow_server.url,
        headers={"Authorization": f"Bearer {notiflow_server.token}"},
        timeout=30,
    ) as client:
        yield client


async def sign_in(page: Page, server: NotiflowServer) -> None:
    await page.goto(f"{server.url}/ui/sign-in")
    await page.get_by_label("API token").fill(server.token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("link", name="Settings")).to_be_visible()


def _stayed_here(log: BrowserLog) -> None:
    assert log.hosts() == {"127.0.0.1"}, log.requests
    assert not log.errors, log.errors
    assert not log.console_errors, log.console_errors


async def test_the_preview_follows_the_tags_as_they_are_typed(
    page: Page,
    browser_log: BrowserLog,
    notiflow_server: NotiflowServer,
    api: httpx.AsyncClient,
) -> None:
    for n, tag in enumerate(["vip", "vip", "vip", "other", "other"]):
        response = await api.post("/api/v1/clients", json={"phone": f"7900000000{n}", "tag": tag})
        assert response.status_code == 201, response.text
    await sign_in(page, notiflow_server)
    await page.goto(f"{notiflow_server.url}/ui/mailings/new")

    count = page.locator("#audience-count")
    await expect(count).to_have_text("5 clients match.")
    await page.get_by_label("Tags").press_sequentially("vip")
    await expect(count).to_have_text("3 clients match.")
    await page.get_by_label("Tags").fill("nobody")
    await expect(count).to_have_text("No client matches.")

    # A wrong value: the API's message, in place of the count.
    await page.get_by_label("Tags").fill("")
    await page.get_by_label("Operator codes").press_sequentially("9x")
    errors = page.locator("#audience-errors")
    await expect(errors).to_contain_text("Operator codes:")
    await expect(count).to_have_count(0)
    await page.get_by_label("Operator codes").fill("900")
    await expect(count).to_have_text("5 clients match.")
    assert "/ui/mailings/preview" in browser_log.paths()
    _stayed_here(browser_log)


async def test_a_new_token_is_shown_once_and_revoked_after_asking(
    page: Page,
    browser_log: BrowserLog,
    notiflow_server: NotiflowServer,
    api: httpx.AsyncClient,
) -> None:
    await sign_in(page, notiflow_server)
    await page.get_by_role("link", name="Settings").click()
    await expect(page.get_by_role("heading", name="Settings", level=1)).to_be_visible()
    await expect(page.locator("#NOTIFLOW_PROVIDER_URL")).to_have_text("built-in sandbox")
    await expect(page.locator("#workers-all")).to_contain_text("alive")  # serve's own engine

    await page.get_by_label("Name").fill("ci-bot")
    await page.get_by_label("Role").select_option("send")
    await page.get_by_role("button", name="Create token").click()
    shown = page.locator("#new-token")
    await expect(shown).to_have_text(re.compile(r"^nf_[\w-]{40,}$"))
    token = await shown.inner_text()
    with_it = {"Authorization": f"Bearer {token}"}
    assert (await api.get("/api/v1/mailings", headers=with_it)).status_code == 200

    await page.get_by_role("link", name="Back to the settings").click()
    row = page.locator("tr[data-token='ci-bot']")
    await expect(row).to_contain_text("send")
    assert token not in await page.content()  # once: never again

    # Revoking asks first; saying no keeps it.
    asked: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.dismiss()

    page.once("dialog", dismiss)
    await row.get_by_role("button", name="Revoke").click()
    await expect(row).to_be_visible()
    assert (await api.get("/api/v1/mailings", headers=with_it)).status_code == 200

    async def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    page.once("dialog", accept)
    await row.get_by_role("button", name="Revoke").click()
    await expect(page.locator(".flash")).to_contain_text("was revoked")
    await expect(row).to_have_count(0)
    assert len(asked) == 2
    assert all(message.startswith("Revoke the token ci-bot?") for message in asked)
    assert (await api.get("/api/v1/mailings", headers=with_it)).status_code == 401
    _stayed_here(browser_log)


async def test_clone_a_mailing_and_save_it(
    page: Page,
    browser_log: BrowserLog,
    notiflow_server: NotiflowServer,
    api: httpx.AsyncClient,
) -> None:
    start = datetime.now(UTC) + timedelta(days=1)
    created = await api.post(
        "/api/v1/mailings",
        json={
            "text": "Autumn sale, again",
            "start_time": iso(start),
            "end_time": iso(start + timedelta(hours=2)),
            "filter": {"operator_codes": ["900"], "tags": ["vip"]},
            "send_window": {"start": "09:00", "end": "21:00"},
        },
    )
    assert created.status_code == 201, created.text
    original = created.json()
    await sign_in(page, notiflow_server)
    await page.goto(f"{notiflow_server.url}/ui/mailings/{original['id']}")

    await page.get_by_role("link", name="Clone").click()
    await expect(page.get_by_role("heading", name="New mailing")).to_be_visible()
    await expect(page.locator("#cloned-from")).to_contain_text("2 h")
    await expect(page.get_by_label("Text")).to_have_value("Autumn sale, again")
    await expect(page.get_by_label("Tags")).to_have_value("vip")
    await expect(page.locator("#audience-count")).to_have_text("No client matches.")
    await page.get_by_role("button", name="Create").click()

    await expect(page).to_have_url(re.compile(r"/ui/mailings/\d+$"))
    clone_id = int(page.url.rsplit("/", 1)[1])
    assert clone_id != original["id"]
    await expect(page.locator(".flash")).to_contain_text(f"Mailing {clone_id} was created.")
    clone = (await api.get(f"/api/v1/mailings/{clone_id}")).json()
    for key in ("text", "filter", "send_window"):
        assert clone[key] == original[key]
    _stayed_here(browser_log)
