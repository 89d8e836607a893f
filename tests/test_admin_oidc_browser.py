"""Sign-in through OpenID Connect in Chromium: a real ``notiflow serve`` with the OIDC settings,
the test provider's own pages (oidc-provider-mock on 127.0.0.1), and back to the UI."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page, expect

from tests.browser_support import NotiflowServer
from tests.oidc_support import OidcProvider

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

PERSON = "ada@browser.example"


@pytest.fixture
def server(
    oidc_provider: OidcProvider,
    start_notiflow: Callable[..., NotiflowServer],
    tmp_path: Path,
) -> NotiflowServer:
    oidc_provider.add_user(PERSON, email=PERSON, email_verified=True, name="Ada")
    return start_notiflow(
        f"sqlite+aiosqlite:///{tmp_path}/notiflow.db",
        env={
            "NOTIFLOW_OIDC_ISSUER": oidc_provider.url,
            "NOTIFLOW_OIDC_CLIENT_ID": "notiflow-browser-test",
            "NOTIFLOW_OIDC_CLIENT_SECRET": "browser-test-secret",
            "NOTIFLOW_OIDC_ALLOWED_DOMAINS": "browser.example",
            "NOTIFLOW_OIDC_ROLE": "admin",
        },
    )


async def test_sign_in_through_the_providers_page_and_out_again(
    page: Page, server: NotiflowServer, oidc_provider: OidcProvider
) -> None:
    host = urlsplit(oidc_provider.url).netloc
    await page.goto(f"{server.url}/ui/mailings")
    await expect(page).to_have_url(re.compile(r"/ui/sign-in\?next="))
    await page.get_by_role("link", name=f"Sign in with {host}").click()

    # The provider's own authorization page.
    await expect(page).to_have_url(re.compile(re.escape(oidc_provider.url) + "/oauth2/authorize"))
    await page.locator("input[name=sub]").fill(PERSON)
    await page.get_by_role("button", name="Authorize").click()

    # Back in Notiflow, signed in, where the sign-in started.
    await expect(page).to_have_url(f"{server.url}/ui/mailings")
    await expect(page.locator("header .who")).to_contain_text(PERSON)
    await expect(page.locator("header .role")).to_have_text("admin")
    await page.get_by_role("link", name="Dashboard").click()
    await expect(page).to_have_url(f"{server.url}/ui/")
    await expect(page.get_by_role("heading", level=1)).to_be_visible()

    # Sign out: the sign-in page offers the provider's logout, which comes back to it.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(f"{server.url}/ui/sign-in")
    await page.get_by_role("link", name=f"Sign out of {host} too").click()
    await expect(page).to_have_url(re.compile(re.escape(oidc_provider.url) + "/oauth2/end_session"))
    await page.get_by_role("button", name="End session").click()
    await expect(page).to_have_url(f"{server.url}/ui/sign-in")
    await page.goto(f"{server.url}/ui/")
    await expect(page).to_have_url(re.compile(r"/ui/sign-in\?next="))
