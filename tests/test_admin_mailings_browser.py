"""The admin UI's mailing flows in Chromium, against a real ``notiflow serve`` sending to the
sandbox provider over HTTP on 127.0.0.1: sign in with a token, create a mailing in the form (a
bad end time first), watch it run to 100% on its page and in the list without a reload, pause
and resume one, cancel one (the confirmation dismissed, then accepted), and read the messages
table (status filter, paging) against the CSV export.

Clients are made through the API (the CSV import has browser tests of its own). The sandbox
answers every request after ``SLOW_MS`` and the server sends one request at a time, so a mailing
of ``AUDIENCE`` clients cannot finish in less than ``AUDIENCE * SLOW_MS``: long enough, on any
machine, to see it running and act on it. Once a test has seen what it needs, it makes the
sandbox answer at once, and the rest is sent in a moment.
"""

from __future__ import annotations

import csv
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Dialog, Locator, Page, expect

from tests.browser_support import BrowserLog, NotiflowServer
from tests.delivery_support import SANDBOX_TOKEN, ThreadedSandbox
from tests.helpers import iso

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

AUDIENCE = 60  # more than a page of the messages table (50)
SLOW_MS = 500  # the sandbox's delay while a test watches a mailing run
TAG = "spring"


@dataclass
class Stage:
    """A server, the sandbox it sends to, and the API as an admin."""

    server: NotiflowServer
    sandbox: ThreadedSandbox
    api: httpx.AsyncClient

    def url(self, path: str) -> str:
        return f"{self.server.url}{path}"


@pytest_asyncio.fixture(loop_scope="session")
async def stage(
    db_url: str, start_notiflow: Callable[..., NotiflowServer], provider: ThreadedSandbox
) -> AsyncIterator[Stage]:
    """``notiflow serve`` on this test's database (SQLite, PostgreSQL) sending to the sandbox,
    one request at a time; ``AUDIENCE`` clients tagged ``TAG``, and a few others."""
    server = start_notiflow(
        db_url,
        env={
            "NOTIFLOW_PROVIDER_URL": provider.url,
            "NOTIFLOW_PROVIDER_TOKEN": SANDBOX_TOKEN,
            "NOTIFLOW_SEND_CONCURRENCY": "1",
            "NOTIFLOW_ENGINE_POLL_SECONDS": "0.5",
        },
    )
    headers = {"Authorization": f"Bearer {server.token}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as api:
        rows = [f"7916{i:07d},{TAG},Europe/Moscow" for i in range(AUDIENCE)]
        rows += [f"7925{i:07d},autumn,Asia/Novosibirsk" for i in range(5)]
        imported = await api.post(
            "/api/v1/clients/import",
            content="phone,tag,timezone\n" + "\n".join(rows) + "\n",
            headers={"Content-Type": "text/csv"},
        )
        assert imported.json()["created"] == AUDIENCE + 5, imported.text
        yield Stage(server, provider, api)


def form_time(value: datetime) -> str:
    """A time as the form takes it (UTC, to the minute)."""
    return value.strftime("%Y-%m-%dT%H:%M")


async def create_mailing(stage: Stage, text: str) -> int:
    """A mailing to ``TAG`` that starts now, through the API."""
    now = datetime.now(UTC)
    response = await stage.api.post(
        "/api/v1/mailings",
        json={
            "text": text,
            "start_time": iso(now - timedelta(minutes=1)),
            "end_time": iso(now + timedelta(hours=1)),
            "filter": {"tags": [TAG]},
        },
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def stats_of(stage: Stage, mailing_id: int) -> dict[str, Any]:
    response = await stage.api.get(f"/api/v1/mailings/{mailing_id}/stats")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def message_ids(stage: Stage, mailing_id: int) -> list[int]:
    response = await stage.api.get(
        f"/api/v1/mailings/{mailing_id}/messages", params={"limit": 1000}
    )
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def sign_in(page: Page, stage: Stage) -> None:
    """Open the UI signed out, and sign in with the server's token."""
    await page.goto(stage.url("/ui/"))
    await expect(page).to_have_url(re.compile(r"/ui/sign-in"))
    await page.get_by_label("API token").fill(stage.server.token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


async def mark_document(page: Page) -> None:
    """Tag the loaded document; ``still_same_document`` tells whether it was never reloaded."""
    await page.evaluate("() => { window.notiflowTestMark = true; }")


async def still_same_document(page: Page) -> bool:
    return bool(await page.evaluate("() => window.notiflowTestMark === true"))


def counts_of(page: Page) -> Locator:
    """The polled section of a mailing's page: status badge, progress bar, counts."""
    return page.locator("#mailing-counts")


def count_of(page: Page, status: str) -> Locator:
    return counts_of(page).locator(f'dd[data-status="{status}"]')


def flash_of(page: Page) -> Locator:
    """The message of the last action (the page has other live regions: the chart's caption)."""
    return page.locator("p.flash[role=status]")


# What Chromium logs as a console error for a page answered with 422 (a refused form).
REFUSED_FORM = (
    "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
)


def assert_stayed_local(log: BrowserLog, *, console_errors: tuple[str, ...] = ()) -> None:
    """No request left 127.0.0.1, and the pages had no errors (but those expected)."""
    assert log.requests, "the request log is empty"
    assert log.hosts() == {"127.0.0.1"}, f"requests left 127.0.0.1: {log.requests}"
    assert not log.refused, log.refused
    assert not log.errors, log.errors
    assert log.console_errors == list(console_errors), log.console_errors


async def test_a_mailing_from_the_form_runs_to_completion_live(
    page: Page, browser_log: BrowserLog, stage: Stage
) -> None:
    """The form refuses an end time before the start next to its field, keeps what was typed,
    then creates the mailing; its page and the mailings list, both open, follow it from running
    to completed and 100% by polling, without a reload."""
    stage.sandbox.configure(latency_ms=SLOW_MS, reject_rate=0.1)
    await sign_in(page, stage)
    await page.get_by_role("link", name="Mailings", exact=True).click()
    await page.get_by_role("link", name="New mailing").click()
    await expect(page.get_by_role("heading", name="New mailing")).to_be_visible()

    now = datetime.now(UTC)
    text = "Spring sale: 20% off everything until Sunday."
    end = page.get_by_label("End (UTC)")
    await page.get_by_label("Text", exact=True).fill(text)
    await page.get_by_label("Start (UTC)").fill(form_time(now - timedelta(minutes=1)))
    await end.fill(form_time(now - timedelta(minutes=2)))
    await page.get_by_label("Tags", exact=True).fill(TAG)
    await page.get_by_role("button", name="Create").click()

    end_field = page.locator(".field", has=end)
    await expect(end_field.locator(".field-error")).to_have_text("must be after start_time")
    await expect(end).to_have_attribute("aria-invalid", "true")
    await expect(page.locator(".field-error")).to_have_count(1)
    await expect(page.get_by_label("Text", exact=True)).to_have_value(text)
    await expect(page.get_by_label("Tags", exact=True)).to_have_value(TAG)
    listed = await stage.api.get("/api/v1/mailings")
    assert listed.json()["total"] == 0, "a refused form created a mailing"

    await end.fill(form_time(now + timedelta(hours=2)))
    await page.get_by_role("button", name="Create").click()
    await expect(flash_of(page)).to_have_text(re.compile(r"^Mailing \d+ was created\.$"))
    mailing_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    await expect(page.locator("#mailing-status")).to_have_text("running")
    await expect(count_of(page, "total")).to_have_text(str(AUDIENCE))
    progress = counts_of(page).locator("progress")
    assert int(await progress.get_attribute("value") or "0") < 100

    listing = await page.context.new_page()
    await listing.goto(stage.url("/ui/mailings"))
    row = listing.locator(f'tr[data-mailing="{mailing_id}"]')
    await expect(row.locator(".badge")).to_have_text("running")
    await expect(row.locator(".pct")).not_to_have_text("100%")
    await mark_document(page)
    await mark_document(listing)

    stage.sandbox.configure(latency_ms=0)  # the rest goes at once

    await expect(row.locator(".badge")).to_have_text("completed")
    await expect(row.locator("progress")).to_have_attribute("value", "100")
    await expect(row.locator(".pct")).to_have_text("100%")
    await expect(counts_of(page).locator(".badge")).to_have_text("completed")
    await expect(progress).to_have_attribute("value", "100")
    await expect(counts_of(page)).to_contain_text("100% done")
    await expect(page.locator("#mailing-status")).to_have_text("completed")
    # Both stopped polling once it ended.
    await expect(page.locator("#mailing-counts[hx-get]")).to_have_count(0)
    await expect(listing.locator("#mailing-rows[hx-get]")).to_have_count(0)
    assert await still_same_document(page), "the mailing's page was reloaded"
    assert await still_same_document(listing), "the mailings list was reloaded"
    paths = browser_log.paths()
    assert f"/ui/mailings/{mailing_id}/counts" in paths
    assert "/ui/mailings/rows" in paths

    stats = (await stats_of(stage, mailing_id))["stats"]
    assert stats["sent"] + stats["failed"] == AUDIENCE, stats
    await expect(count_of(page, "sent")).to_have_text(str(stats["sent"]))
    await expect(count_of(page, "failed")).to_have_text(str(stats["failed"]))
    await listing.close()
    assert_stayed_local(browser_log, console_errors=(REFUSED_FORM,))


async def test_pause_and_resume_a_running_mailing(
    page: Page, browser_log: BrowserLog, stage: Stage
) -> None:
    """Paused while it runs, a mailing stops with messages left; resumed, it sends the rest and
    completes: every message reaches the provider."""
    stage.sandbox.configure(latency_ms=SLOW_MS)
    mailing_id = await create_mailing(stage, "Your parcel is on its way.")
    await sign_in(page, stage)
    await page.goto(stage.url(f"/ui/mailings/{mailing_id}"))
    await expect(page.locator("#mailing-status")).to_have_text("running")
    await expect(count_of(page, "sent")).not_to_have_text("0")  # it moves by itself

    await page.get_by_role("button", name="Pause", exact=True).click()
    await expect(flash_of(page)).to_have_text(f"Mailing {mailing_id} was paused.")
    await expect(page.locator("#mailing-status")).to_have_text("paused")
    await expect(page.get_by_role("button", name="Pause", exact=True)).to_have_count(0)
    stats = await stats_of(stage, mailing_id)
    assert stats["status"] == "paused"
    assert stats["stats"]["sent"] < AUDIENCE, stats

    stage.sandbox.configure(latency_ms=0)
    await page.get_by_role("button", name="Resume", exact=True).click()
    await expect(flash_of(page)).to_have_text(f"Mailing {mailing_id} was resumed.")
    await expect(counts_of(page).locator(".badge")).to_have_text("completed")
    await expect(counts_of(page).locator("progress")).to_have_attribute("value", "100")
    await expect(count_of(page, "sent")).to_have_text(str(AUDIENCE))
    await expect(page.locator("#mailing-status")).to_have_text("completed")

    ids = await message_ids(stage, mailing_id)
    assert set(stage.sandbox.accepted()) == set(ids)
    assert len(ids) == AUDIENCE
    assert_stayed_local(browser_log)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # a UI flow: one database is enough
async def test_cancel_asks_first(page: Page, browser_log: BrowserLog, stage: Stage) -> None:
    """Cancel asks for confirmation: dismissed, nothing is sent to the server; accepted, the
    mailing is cancelled with its unsent messages."""
    stage.sandbox.configure(latency_ms=SLOW_MS)
    mailing_id = await create_mailing(stage, "Last call: the sale ends tonight.")
    await sign_in(page, stage)
    await page.goto(stage.url(f"/ui/mailings/{mailing_id}"))
    await expect(page.locator("#mailing-status")).to_have_text("running")
    cancel = page.get_by_role("button", name="Cancel", exact=True)
    asked: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.dismiss()

    async def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    page.once("dialog", dismiss)
    await cancel.click()
    await expect(page.locator("#mailing-status")).to_have_text("running")
    assert asked == [f"Cancel mailing {mailing_id}? This cannot be undone."]
    assert (await stats_of(stage, mailing_id))["status"] == "running"

    page.once("dialog", accept)
    await cancel.click()
    await expect(flash_of(page)).to_have_text(f"Mailing {mailing_id} was cancelled.")
    await expect(page.locator("#mailing-status")).to_have_text("cancelled")
    await expect(cancel).to_have_count(0)
    assert len(asked) == 2
    # The dismissed click sent nothing: one cancel request in all.
    cancels = [path for path in browser_log.paths() if path.endswith(f"/{mailing_id}/cancel")]
    assert cancels == [f"/ui/mailings/{mailing_id}/cancel"]
    # What was not sent yet is cancelled (give or take the request on its way, which the
    # provider may still accept, and which then counts as sent).
    assert int(await count_of(page, "cancelled").inner_text()) > 0
    stats = await stats_of(stage, mailing_id)
    assert stats["status"] == "cancelled"
    assert stats["stats"]["cancelled"] > 0
    assert_stayed_local(browser_log)


def table_rows(text: str) -> list[list[str]]:
    return [line for line in csv.reader(text.splitlines()) if line]


async def shown_messages(page: Page) -> list[list[str]]:
    """The messages table's rows: id, phone, status, attempts, last error, sent at."""
    return await page.locator("#messages tbody tr").evaluate_all(  # type: ignore[no-any-return]
        "rows => rows.map(row => Array.from(row.cells, cell => cell.textContent.trim()))"
    )


async def export(page: Page) -> tuple[str, list[list[str]]]:
    """Click Export CSV: the file's name, and its rows in the table's columns."""
    async with page.expect_download() as started:
        await page.get_by_role("link", name="Export CSV").click()
    download = await started.value
    path = await download.path()
    header, *rows = table_rows(await anyio.Path(path).read_text(encoding="utf-8"))
    column = {name: header.index(name) for name in header}

    def sent_at(value: str) -> str:
        if not value:
            return ""
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S")

    shown = [
        [
            row[column["id"]],
            row[column["phone"]],
            row[column["status"]],
            row[column["attempts"]],
            row[column["last_error"]],
            sent_at(row[column["sent_at"]]),
        ]
        for row in rows
    ]
    return download.suggested_filename, shown


async def test_messages_table_filter_paging_and_export(
    page: Page, browser_log: BrowserLog, stage: Stage
) -> None:
    """The messages of a completed mailing with failures: two pages, a status filter, and the
    CSV export (of all, and of the filtered) holding exactly the rows the table shows."""
    stage.sandbox.configure(reject_rate=0.25)
    mailing_id = await create_mailing(stage, "Your code is 4711.")
    await sign_in(page, stage)
    await page.goto(stage.url(f"/ui/mailings/{mailing_id}"))
    await expect(counts_of(page).locator(".badge")).to_have_text("completed")
    stats = (await stats_of(stage, mailing_id))["stats"]
    assert stats["failed"] > 0, stats
    assert stats["sent"] > 0, stats
    await page.reload()  # the table is not polled: read it as it is now

    pager = page.locator(".pager")
    await expect(page.locator("#messages tbody tr")).to_have_count(50)
    await expect(pager).to_contain_text(f"1–50 of {AUDIENCE}")
    first = await shown_messages(page)
    await pager.get_by_role("link", name="older →").click()
    await expect(pager).to_contain_text(f"51–{AUDIENCE} of {AUDIENCE}")
    await expect(page.locator("#messages tbody tr")).to_have_count(AUDIENCE - 50)
    everything = first + await shown_messages(page)
    assert [int(row[0]) for row in everything] == await message_ids(stage, mailing_id)
    assert {row[2] for row in everything} == {"sent", "failed"}
    assert all(row[4] for row in everything if row[2] == "failed")

    name, exported = await export(page)
    assert name == f"mailing-{mailing_id}-messages.csv"
    assert exported == everything

    await page.get_by_label("Status").select_option("failed")
    await page.get_by_role("button", name="Show").click()
    await expect(page).to_have_url(re.compile(r"status=failed"))
    await expect(page.locator("#messages tbody tr")).to_have_count(stats["failed"])
    failed = await shown_messages(page)
    assert failed == [row for row in everything if row[2] == "failed"]
    _, exported_failed = await export(page)
    assert exported_failed == failed
    assert_stayed_local(browser_log)
