"""Fixtures: every test that takes ``db_url`` runs once on SQLite and once on PostgreSQL.

PostgreSQL comes from ``NOTIFLOW_TEST_POSTGRES_URL`` (default: the local server); a database is
created for the run and dropped after it. Without a reachable server the PostgreSQL half is
skipped, loudly, unless ``NOTIFLOW_TEST_REQUIRE_POSTGRES=1`` (as in CI), which makes it fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from notiflow.app import create_app
from notiflow.config import Settings
from notiflow.db.base import Base
from notiflow.db.migrate import upgrade
from notiflow.delivery.engine import Engine

# The browser tests' fixtures: a real server, Chromium, request logs; the OIDC provider.
pytest_plugins = ["tests.browser_support", "tests.oidc_support"]

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
TOKEN = "test-token"

_pg_skip_reason: list[str] = []


class FakeClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def _require_pg() -> bool:
    return os.environ.get("NOTIFLOW_TEST_REQUIRE_POSTGRES", "") not in ("", "0", "false")


async def _pg_admin(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    admin_url = os.environ.get("NOTIFLOW_TEST_POSTGRES_URL", DEFAULT_PG)
    name = f"notiflow_test_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_pg_admin(admin_url, f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        reason = f"PostgreSQL at {make_url(admin_url)!r} is not reachable: {exc!r}"
        if _require_pg():
            pytest.fail(f"{reason} (NOTIFLOW_TEST_REQUIRE_POSTGRES is set)")
        _pg_skip_reason.append(reason)
        pytest.skip("PostgreSQL is not reachable (see the banner at the end)")
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    asyncio.run(_pg_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _truncate(url: str) -> None:
    engine = create_async_engine(url)
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        if request.node.get_closest_marker("postgres_only"):
            pytest.skip("PostgreSQL-only test")
        path = tmp_path / "notiflow.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_url")
        asyncio.run(_truncate(url))
        yield url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, api_tokens=[TOKEN], _env_file=None)


@pytest.fixture
async def app(settings: Settings, clock: FakeClock) -> AsyncIterator[object]:
    application = create_app(settings, clock=clock)
    yield application
    await application.state.db_engine.dispose()


@pytest.fixture
async def api(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://notiflow.test",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        yield client


def pytest_report_header(config: pytest.Config) -> str:
    url = os.environ.get("NOTIFLOW_TEST_POSTGRES_URL", DEFAULT_PG)
    required = "required" if _require_pg() else "optional"
    return f"notiflow: PostgreSQL at {make_url(url)!r} ({required})"


def pytest_unconfigure(config: pytest.Config) -> None:
    terminalreporter = config.pluginmanager.get_plugin("terminalreporter")
    if _pg_skip_reason and terminalreporter is not None:
        bar = "!" * 78
        terminalreporter.write_line(bar, red=True, bold=True)
        terminalreporter.write_line(
            "THE POSTGRESQL HALF OF THE SUITE WAS SKIPPED: only SQLite was tested.",
            red=True,
            bold=True,
        )
        terminalreporter.write_line(_pg_skip_reason[0], red=True)
        terminalreporter.write_line(
            "Start PostgreSQL or set NOTIFLOW_TEST_POSTGRES_URL; CI sets "
            "NOTIFLOW_TEST_REQUIRE_POSTGRES=1 and fails instead.",
            red=True,
        )
        terminalreporter.write_line(bar, red=True, bold=True)


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[object]:
    from tests.delivery_support import ThreadedSandbox

    server = ThreadedSandbox()
    yield server
    server.close()


@pytest.fixture
def provider(sandbox_server: object) -> object:
    """The sandbox provider, reset to a well-behaved state with an empty log."""
    sandbox_server.reset()  # type: ignore[attr-defined]
    return sandbox_server


@pytest.fixture
async def start_engine(
    app: Any, settings: Settings, clock: Any, provider: Any
) -> AsyncIterator[Callable[..., Awaitable[Engine]]]:
    """Start delivery engines on the app's database, sending to the sandbox with the FAST
    settings (and any override); they are stopped after the test."""
    from tests.delivery_support import FAST, SANDBOX_TOKEN

    engines: list[Engine] = []

    async def start(token: str = SANDBOX_TOKEN, **overrides: Any) -> Engine:
        engine = Engine(
            settings=settings.model_copy(update={**FAST, **overrides}),
            sessionmaker=app.state.sessionmaker,
            provider_url=provider.url,
            provider_token=token,
            signal=app.state.engine_signal,
            clock=clock,
            metrics=app.state.metrics,
        )
        await engine.start()
        app.state.engine = engine
        engines.append(engine)
        return engine

    yield start
    for engine in engines:
        await engine.stop()
