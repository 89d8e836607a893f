"""Browser tests: a real Notiflow server, Debian's Chromium driven by Playwright, and a log of
every request a page makes. A pytest plugin (``pytest_plugins`` in tests/conftest.py).

A browser test uses Playwright's async API on the session's event loop (the browser is started
once per session), so a module of them starts with::

    pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

and takes ``page`` (a fresh browser context: no cookies, no storage), ``browser_log`` (what that
page requested) and a server: ``notiflow_server`` (``notiflow serve`` on a database of its own,
on SQLite and on PostgreSQL, like ``db_url``), ``shared_server`` (one ``notiflow serve`` on SQLite
for the whole session, for tests that only read) or ``start_notiflow`` (any command, any
settings). Wait with Playwright's ``expect(...)``, which retries until ``EXPECT_TIMEOUT_MS``;
never sleep.

Why not the sync API: it marks its event loop as running in the test's thread from its first call
until it stops, so every asyncio test after a session-wide sync browser fails ("cannot be called
from a running event loop").

Chromium is the system's (``/usr/bin/chromium``, Debian's ``chromium`` package, which ``.ci/run``
installs), never one downloaded by ``playwright install``. Without it the browser tests are
skipped with the reason, or fail when ``NOTIFLOW_TEST_REQUIRE_BROWSER=1`` (set by ``.ci/run``).
Requests to any host other than 127.0.0.1 (or ``HOSTNAME``) are recorded, then aborted as if
the machine were offline.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    Route,
    async_playwright,
    expect,
)

CHROMIUM = Path(os.environ.get("NOTIFLOW_TEST_CHROMIUM", "/usr/bin/chromium"))
EXPECT_TIMEOUT_MS = 30_000  # generous: a 2-core machine shared with other test runs
START_TIMEOUT_S = 60
TOKEN = "browser-test-token"
# A name for 127.0.0.1 that is not "localhost", as a deployed Notiflow has (some front-end code
# behaves differently on localhost); the browser is started mapping it to 127.0.0.1.
HOSTNAME = "notiflow.test"
LOCAL_HOSTS = frozenset({"127.0.0.1", HOSTNAME})
IN_BROWSER_SCHEMES = frozenset({"data", "blob", "about"})  # never leave the browser

expect.set_options(timeout=EXPECT_TIMEOUT_MS)


def _require_browser() -> bool:
    return os.environ.get("NOTIFLOW_TEST_REQUIRE_BROWSER", "") not in ("", "0", "false")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def is_local(url: str) -> bool:
    """Whether a request to ``url`` stays on this machine."""
    parts = urlsplit(url)
    return parts.scheme in IN_BROWSER_SCHEMES or parts.hostname in LOCAL_HOSTS


@dataclass
class BrowserLog:
    """What a page did, in order: every request the browser sent (``requests``: routed through
    :meth:`route` before any connection is made, so aborted ones are there too), the requests it
    refused itself before sending them (``refused``: a Content-Security-Policy said no), and its
    errors (uncaught exceptions; console errors)."""

    requests: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    async def route(self, route: Route) -> None:
        url = route.request.url
        self.requests.append(url)
        if is_local(url):
            await route.continue_()
        else:
            await route.abort("internetdisconnected")

    def failed(self, request: Request) -> None:
        if request.failure == "csp":
            self.refused.append(request.url)

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def hosts(self) -> set[str | None]:
        """The hosts of the requests sent (data: and blob: URLs left out)."""
        return {
            urlsplit(url).hostname
            for url in self.requests
            if urlsplit(url).scheme not in IN_BROWSER_SCHEMES
        }

    def paths(self) -> list[str]:
        return [urlsplit(url).path for url in self.requests]


class NotiflowServer:
    """A ``notiflow`` command (``serve`` by default) running on 127.0.0.1 on a free port, with
    its output in ``<tmp>/notiflow-<port>.log``."""

    def __init__(
        self,
        *,
        database_url: str,
        tmp_path: Path,
        command: str = "serve",
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = TOKEN
        self.log_path = tmp_path / f"notiflow-{self.port}.log"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFLOW_")}
        environment.update(
            {
                "NOTIFLOW_DATABASE_URL": database_url,
                "NOTIFLOW_API_TOKENS": TOKEN,
                "NOTIFLOW_LOG_LEVEL": "WARNING",
                **(env or {}),
            }
        )
        argv = [sys.executable, "-m", "notiflow", command, "--host", "127.0.0.1"]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [*argv, "--port", str(self.port)],
                cwd=tmp_path,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_until_up()
        except BaseException:
            self.stop()
            raise

    def url_at(self, host: str) -> str:
        """The server's address under another name for 127.0.0.1 (``HOSTNAME``)."""
        return f"http://{host}:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while True:
                if self.process.poll() is not None:
                    pytest.fail(f"notiflow exited with {self.process.returncode}:\n{self.output()}")
                try:
                    if client.get("/health/live").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"notiflow did not answer in {START_TIMEOUT_S} s:\n{self.output()}")
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def start_notiflow(tmp_path: Path) -> Iterator[Callable[..., NotiflowServer]]:
    """Start ``notiflow`` processes (``start_notiflow(database_url, command=…, env=…)``); they
    are stopped after the test."""
    servers: list[NotiflowServer] = []

    def start(
        database_url: str, *, command: str = "serve", env: dict[str, str] | None = None
    ) -> NotiflowServer:
        server = NotiflowServer(
            database_url=database_url, tmp_path=tmp_path, command=command, env=env
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def notiflow_server(db_url: str, start_notiflow: Callable[..., NotiflowServer]) -> NotiflowServer:
    """``notiflow serve`` (API, engine and the built-in sandbox provider) on this test's own
    database: once on SQLite, once on PostgreSQL."""
    return start_notiflow(db_url)


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotiflowServer]:
    """One ``notiflow serve`` on SQLite for the session, for tests that change nothing."""
    tmp = tmp_path_factory.mktemp("shared-server")
    server = NotiflowServer(database_url=f"sqlite+aiosqlite:///{tmp}/notiflow.db", tmp_path=tmp)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The system's Chromium; the browser tests are skipped (or fail, in CI) without it."""
    if not CHROMIUM.exists():
        reason = (
            f"Chromium is not installed at {CHROMIUM} (apt-get install chromium; "
            "never `playwright install`)"
        )
        if _require_browser():
            pytest.fail(f"{reason}, and NOTIFLOW_TEST_REQUIRE_BROWSER is set")
        pytest.skip(reason)
    return CHROMIUM


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    """Headless Chromium, for the whole session."""
    async with async_playwright() as playwright:
        # Playwright passes --no-sandbox itself (chromium_sandbox=False), which running as root
        # in a container needs.
        launched = await playwright.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=[f"--host-resolver-rules=MAP {HOSTNAME} 127.0.0.1"],
        )
        yield launched
        await launched.close()


@pytest.fixture
def browser_log() -> BrowserLog:
    return BrowserLog()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser, browser_log: BrowserLog) -> AsyncIterator[Page]:
    """A page in a fresh browser context (no cookies, no storage). Every request it sends goes
    through ``browser_log``; one that would leave this machine is aborted as if offline."""
    context = await browser.new_context()
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    await context.route("**/*", browser_log.route)
    context.on("requestfailed", browser_log.failed)
    page = await context.new_page()
    page.on("pageerror", lambda error: browser_log.errors.append(f"uncaught: {error}"))
    page.on("console", browser_log.console)
    yield page
    await context.close()
