"""The charts of the admin UI in Chromium, against a real ``notiflow serve`` sending to the
sandbox provider: uPlot draws the dashboard's and a mailing's messages per minute from the UI's
JSON routes, says so when there is nothing to draw, follows the page's width, and nothing the
pages load comes from anywhere but 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from notiflow.web.static import vendored
from tests.browser_support import BrowserLog, NotiflowServer
from tests.delivery_support import SANDBOX_TOKEN, ThreadedSandbox

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

AUDIENCE = 40
CHART = "#timeline-chart"


async def sign_in(page: Page, server: NotiflowServer, path: str = "/ui/") -> None:
    await page.goto(f"{server.url}{path}")
    await page.get_by_label("API token").fill(server.token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()


async def expect_a_chart(page: Page, sent: int, failed: int, minutes: int | None = None) -> None:
    """uPlot drew the series, and the caption holds the totals of the data it drew."""
    chart = page.locator(CHART)
    await expect(chart.locator(".chart-state")).to_contain_text(f"{sent} sent, {failed} failed")
    if minutes is not None:
        await expect(chart.locator(".chart-state")).to_contain_text(f"in these {minutes} minutes")
    await expect(chart).to_have_attribute("data-state", "drawn")
    await expect(chart.locator(".uplot canvas")).to_have_count(1)
    await expect(chart.locator(".u-legend .u-series .u-label")).to_have_text(
        ["UTC", "sent", "failed"]
    )
    await expect(chart.locator(".u-axis")).to_have_count(2)


def assert_stayed_local(log: BrowserLog, *paths: str) -> None:
    assert log.hosts() == {"127.0.0.1"}, log.requests
    for path in paths:
        assert path in log.paths(), f"{path} was not requested: {log.requests}"
    assert not log.refused, log.refused  # nothing the page's CSP had to stop either
    assert not log.errors, log.errors
    assert not log.console_errors, log.console_errors


async def test_the_charts_draw_a_mailing_sent_to_the_sandbox(
    page: Page,
    browser_log: BrowserLog,
    db_url: str,
    start_notiflow: Callable[..., NotiflowServer],
    provider: ThreadedSandbox,
) -> None:
    """A quarter of the messages are refused by the provider for good: both series have data.
    The mailing's page follows the mailing until it is completed; the dashboard shows the same
    messages among the last six hours' (on SQLite and on PostgreSQL)."""
    provider.configure(reject_rate=0.25, latency_ms=20)
    server = start_notiflow(
        db_url,
        env={"NOTIFLOW_PROVIDER_URL": provider.url, "NOTIFLOW_PROVIDER_TOKEN": SANDBOX_TOKEN},
    )
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}
    ) as api:
        body = "phone\n" + "".join(f"7900{n:07d}\n" for n in range(AUDIENCE))
        imported = await api.post(
            "/api/v1/clients/import", content=body, headers={"Content-Type": "text/csv"}
        )
        assert imported.json()["created"] == AUDIENCE, imported.text
        created = await api.post(
            "/api/v1/mailings",
            json={
                "text": "charts",
                "start_time": "2020-01-01T00:00:00Z",
                "end_time": "2100-01-01T00:00:00Z",
            },
        )
        assert created.status_code == 201, created.text
        mailing_id = created.json()["id"]

        await sign_in(page, server, f"/ui/mailings/{mailing_id}")
        # The counts poll themselves until the mailing is completed; the chart follows.
        await expect(page.locator("#mailing-counts .badge")).to_have_text("completed")
        counts: dict[str, Any] = (await api.get(f"/api/v1/mailings/{mailing_id}")).json()["stats"]
        timeline = (await api.get(f"/api/v1/mailings/{mailing_id}/timeline")).json()
    sent, failed = counts["sent"], counts["failed"]
    assert sent + failed == AUDIENCE
    assert sent > 0, counts
    assert failed > 0, counts
    await expect_a_chart(page, sent, failed)
    # Away from the cursor, the legend shows the last minute: the mailing's last outcomes.
    latest = timeline["points"][-1]
    await expect(page.locator(f"{CHART} .u-legend .u-series .u-value")).to_have_text(
        [latest["at"][:16].replace("T", " "), str(latest["sent"]), str(latest["failed"])]
    )
    assert_stayed_local(
        browser_log,
        vendored("uplot", "uPlot.iife.min.js"),
        vendored("uplot", "uPlot.min.css"),
        "/ui/static/charts.js",
        f"/ui/mailings/{mailing_id}/timeline.json",
    )

    await page.get_by_role("link", name="Dashboard").click()
    await expect_a_chart(page, sent, failed, minutes=360)
    assert "/ui/charts/timeline.json" in browser_log.paths()
    assert_stayed_local(browser_log)


async def test_an_empty_chart_says_so_and_a_chart_fits_a_phone(
    page: Page, browser_log: BrowserLog, shared_server: NotiflowServer
) -> None:
    await page.set_viewport_size({"width": 360, "height": 740})
    await sign_in(page, shared_server)
    chart = page.locator(CHART)
    await expect(chart.locator(".chart-state")).to_have_text("Nothing sent in the last 6 hours.")
    await expect(chart).to_have_attribute("data-state", "empty")
    await expect(chart.locator("canvas")).to_have_count(0)
    # Nothing sticks out of a phone's screen.
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    assert_stayed_local(browser_log, "/ui/charts/timeline.json")


async def test_a_chart_follows_the_width_of_the_page(
    page: Page,
    browser_log: BrowserLog,
    db_url: str,
    start_notiflow: Callable[..., NotiflowServer],
    provider: ThreadedSandbox,
) -> None:
    server = start_notiflow(
        db_url,
        env={"NOTIFLOW_PROVIDER_URL": provider.url, "NOTIFLOW_PROVIDER_TOKEN": SANDBOX_TOKEN},
    )
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}
    ) as api:
        assert (await api.post("/api/v1/clients", json={"phone": "79001234567"})).is_success
        created = await api.post(
            "/api/v1/mailings",
            json={
                "text": "w",
                "start_time": "2020-01-01T00:00:00Z",
                "end_time": "2100-01-01T00:00:00Z",
            },
        )
        mailing_id = created.json()["id"]
    await page.set_viewport_size({"width": 1200, "height": 900})
    await sign_in(page, server, f"/ui/mailings/{mailing_id}")
    await expect(page.locator("#mailing-counts .badge")).to_have_text("completed")
    await expect_a_chart(page, 1, 0)
    wide = await page.locator(f"{CHART} .uplot").evaluate("e => e.offsetWidth")
    assert wide > 600

    await page.set_viewport_size({"width": 360, "height": 740})
    # The chart shrinks with its card (a ResizeObserver redraws it at the new width).
    await page.wait_for_function(
        f"() => document.querySelector('{CHART} .uplot').offsetWidth <= "
        f"document.querySelector('{CHART}').clientWidth"
    )
    assert await page.locator(f"{CHART} .uplot").evaluate("e => e.offsetWidth") < 360
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    assert_stayed_local(browser_log)
