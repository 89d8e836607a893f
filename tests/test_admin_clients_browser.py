"""The client pages in Chromium, against a real ``notiflow serve``: a CSV import with a bad row
(the good rows reach the list, the bad one's error is on the page), opting a client out through
its confirmation, and the pages at phone width."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Dialog, Page, ViewportSize, expect

from tests.browser_support import BrowserLog, NotiflowServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

CSV = (
    "phone,operator_code,tag,timezone\n"
    "79001110001,900,vip,Europe/Moscow\n"
    "+7 916 111-00-02,,vip,\n"
    "79001110003,9x,,UTC\n"
    "8 925 111 00 04,,,+03:00\n"
)
PHONE_WIDTH: ViewportSize = {"width": 360, "height": 740}


async def sign_in(page: Page, server: NotiflowServer) -> None:
    await page.goto(f"{server.url}/ui/clients")
    await page.get_by_label("API token").fill(server.token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Clients")


async def test_import_a_csv_with_a_bad_row(
    page: Page, browser_log: BrowserLog, notiflow_server: NotiflowServer
) -> None:
    await sign_in(page, notiflow_server)
    await expect(page.locator("#no-clients")).to_be_visible()
    await page.get_by_role("link", name="Import CSV").click()
    await page.get_by_label("File").set_input_files(
        {"name": "clients.csv", "mimeType": "text/csv", "buffer": CSV.encode()}
    )
    await page.get_by_role("button", name="Import").click()

    result = page.locator("#import-result")
    await expect(result.locator("#import-created")).to_have_text("3")
    await expect(result.locator("#import-rejected")).to_have_text("1")
    bad = page.locator("#import-errors tbody tr")
    await expect(bad).to_have_count(1)
    await expect(bad.locator("td")).to_have_text(["3", "operator_code", "must be exactly 3 digits"])

    await result.get_by_role("link", name="See the clients").click()
    listing = page.locator("#clients tbody tr")
    await expect(listing).to_have_count(3)
    await expect(page.locator("#clients")).to_contain_text("79001110001")
    await expect(page.locator("#clients")).to_contain_text("79161110002")
    await expect(page.locator("#clients")).to_contain_text("79251110004")
    await expect(page.locator("#clients")).not_to_contain_text("79001110003")

    # A search by part of a phone, then opting the client out: the page asks first.
    await page.get_by_label("Phone").fill("111-00-02")
    await page.get_by_role("button", name="Search").click()
    await expect(listing).to_have_count(1)
    await listing.get_by_role("link", name="79161110002").click()
    await expect(page.locator("#client-state")).to_have_text("receives mailings")
    asked: list[str] = []

    async def answer(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    page.on("dialog", answer)
    await page.get_by_role("button", name="Opt out").click()
    await expect(page.locator("#client-state")).to_have_text("opted out")
    assert len(asked) == 1, asked
    assert "messages not sent yet" in asked[0]

    async with httpx.AsyncClient(
        base_url=notiflow_server.url,
        headers={"Authorization": f"Bearer {notiflow_server.token}"},
    ) as api:
        found = (await api.get("/api/v1/clients", params={"phone": "79161110002"})).json()
    assert found["items"][0]["opted_out_at"] is not None
    assert browser_log.hosts() == {"127.0.0.1"}, browser_log.requests
    assert not browser_log.errors, browser_log.errors


async def _no_horizontal_overflow(page: Page) -> None:
    overflow = await page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{page.url} is {overflow}px wider than the screen"


async def test_the_client_pages_fit_a_phone(
    page: Page, browser_log: BrowserLog, notiflow_server: NotiflowServer
) -> None:
    async with httpx.AsyncClient(
        base_url=notiflow_server.url,
        headers={"Authorization": f"Bearer {notiflow_server.token}"},
    ) as api:
        tag = "a-rather-long-tag-that-could-push-a-table-wider-than-a-phone-" * 2
        body = "phone,tag\n" + "".join(f"7900222{i:04d},{tag}\n" for i in range(60))
        imported = await api.post(
            "/api/v1/clients/import", content=body, headers={"Content-Type": "text/csv"}
        )
        assert imported.json()["created"] == 60, imported.text

    await page.set_viewport_size(PHONE_WIDTH)
    await sign_in(page, notiflow_server)
    await expect(page.locator("#clients tbody tr")).to_have_count(50)
    await expect(page.get_by_role("link", name="next →")).to_be_visible()
    await _no_horizontal_overflow(page)

    await page.get_by_role("link", name="79002220000").click()
    await expect(page.get_by_role("button", name="Save")).to_be_visible()
    await _no_horizontal_overflow(page)

    await page.get_by_label("Operator code").fill("9x")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("p.field-error[data-field='operator_code']")).to_be_visible()
    await _no_horizontal_overflow(page)

    await page.goto(f"{notiflow_server.url}/ui/clients/import")
    await page.get_by_label("File").set_input_files(
        {"name": "one.csv", "mimeType": "text/csv", "buffer": b"phone\nnot-a-phone\n"}
    )
    await page.get_by_role("button", name="Import").click()
    await expect(page.locator("#import-errors tbody tr")).to_have_count(1)
    await _no_horizontal_overflow(page)
    assert not browser_log.errors, browser_log.errors
