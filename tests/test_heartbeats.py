"""Worker heartbeats: GET /api/v1/workers, and the warning of a mailing that needs a worker while
none is alive. In-process engines on SQLite and PostgreSQL; real worker processes are in
test_workers.py."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from notiflow import __version__
from notiflow.config import Settings
from notiflow.db.session import transaction
from notiflow.delivery.engine import Engine
from notiflow.workers import repository
from notiflow.workers.watch import LOG_EVERY_SECONDS, WorkerWatch
from tests.delivery_support import LiveClock, ThreadedSandbox, wait_for
from tests.test_delivery import completed, create_mailing, import_clients

StartEngine = Callable[..., Awaitable[Engine]]
BEAT = {"worker_heartbeat_seconds": 0.2}


@pytest.fixture
def clock() -> LiveClock:
    return LiveClock()


async def workers(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await api.get("/api/v1/workers", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == len(body["items"])
    return body["items"]  # type: ignore[no-any-return]


async def listed(api: httpx.AsyncClient, name: str, **params: Any) -> dict[str, Any] | None:
    return next((w for w in await workers(api, **params) if w["name"] == name), None)


async def insert_worker(app: Any, name: str, *, last_beat_at: datetime, **fields: Any) -> None:
    """A worker row as a heartbeat of another process would have left it."""
    row = {
        "name": name,
        "host": "elsewhere",
        "pid": 4242,
        "version": __version__,
        "started_at": last_beat_at - timedelta(minutes=5),
        "last_beat_at": last_beat_at,
        "stopped_at": None,
        "in_flight": 0,
        "sent": 0,
        "provider": "ok",
        "provider_error": None,
        "error": None,
        "problems": [],
        **fields,
    }
    async with transaction(app.state.sessionmaker) as session:
        await repository.beat(session, row)


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- the list ------------------------------------------------------------------------------------


async def test_a_started_engine_is_listed_and_its_sent_count_grows(
    api: httpx.AsyncClient, clock: LiveClock, provider: ThreadedSandbox, start_engine: StartEngine
) -> None:
    await import_clients(api, 30)
    engine = await start_engine(**BEAT)

    async def seen() -> bool:
        return await listed(api, engine.worker) is not None

    await wait_for(seen, within=10)
    first = await listed(api, engine.worker)
    assert first is not None
    assert first["host"] == socket.gethostname()
    assert first["pid"] == os.getpid()
    assert first["version"] == __version__
    assert first["alive"] is True
    assert first["stopped_at"] is None
    assert first["provider"] == "ok"
    assert first["sent"] == 0
    assert first["problems"] == []
    beat = parse(first["last_beat_at"])
    assert parse(first["started_at"]) <= beat
    assert abs((clock() - beat).total_seconds()) < 5

    mailing = await create_mailing(api, clock)
    await wait_for(lambda: completed(api, mailing["id"]), within=30)

    async def counted() -> bool:
        item = await listed(api, engine.worker)
        return item is not None and item["sent"] == 30

    await wait_for(counted, within=10)
    later = await listed(api, engine.worker)
    assert later is not None
    assert parse(later["last_beat_at"]) > beat
    assert later["started_at"] == first["started_at"]


async def test_a_stopped_engine_leaves_the_live_list_marked_stopped(
    api: httpx.AsyncClient, clock: LiveClock, provider: ThreadedSandbox, start_engine: StartEngine
) -> None:
    engine = await start_engine(**BEAT)

    async def seen() -> bool:
        return await listed(api, engine.worker) is not None

    await wait_for(seen, within=10)
    await engine.stop()
    assert await workers(api) == []
    stopped = await listed(api, engine.worker, all="true")
    assert stopped is not None
    assert stopped["alive"] is False
    assert stopped["stopped_at"] is not None
    assert stopped["in_flight"] == 0


async def test_a_worker_that_stopped_beating_is_dead_after_a_minute(
    app: Any, api: httpx.AsyncClient, clock: LiveClock
) -> None:
    """A worker killed with -9 (or on a lost machine) leaves its row as it was: it stays alive
    until its last beat is a minute old, then shows in ?all=true only."""
    now = clock()
    await insert_worker(app, "killed", last_beat_at=now - timedelta(seconds=61), sent=7)
    await insert_worker(app, "beating", last_beat_at=now - timedelta(seconds=50))
    assert [w["name"] for w in await workers(api)] == ["beating"]
    everyone = {w["name"]: w for w in await workers(api, all="true")}
    assert {name: w["alive"] for name, w in everyone.items()} == {
        "beating": True,
        "killed": False,
    }
    assert everyone["killed"]["sent"] == 7
    assert everyone["killed"]["stopped_at"] is None
    clock.advance(seconds=15)
    assert await workers(api) == []


async def test_the_list_is_newest_first_and_paged(
    app: Any, api: httpx.AsyncClient, clock: LiveClock
) -> None:
    now = clock()
    for n in range(3):
        await insert_worker(
            app, f"w{n}", last_beat_at=now, started_at=now - timedelta(minutes=10 - n)
        )
    assert [w["name"] for w in await workers(api)] == ["w2", "w1", "w0"]
    page = (await api.get("/api/v1/workers", params={"limit": 1, "offset": 1})).json()
    assert page["total"] == 3
    assert [w["name"] for w in page["items"]] == ["w1"]
    assert (page["limit"], page["offset"]) == (1, 1)


async def test_workers_gone_for_a_day_are_forgotten(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    now = clock()
    await insert_worker(app, "yesterday", last_beat_at=now - timedelta(hours=25))
    await insert_worker(app, "an-hour-ago", last_beat_at=now - timedelta(hours=1))
    assert {w["name"] for w in await workers(api, all="true")} == {"yesterday", "an-hour-ago"}
    engine = await start_engine(**BEAT)

    async def forgotten() -> bool:
        names = {w["name"] for w in await workers(api, all="true")}
        return names == {"an-hour-ago", engine.worker}

    await wait_for(forgotten, within=10)


async def test_a_read_token_may_list_workers_and_no_token_may_not(api: httpx.AsyncClient) -> None:
    made = await api.post("/api/v1/tokens", json={"name": "dashboard", "role": "read"})
    assert made.status_code == 201, made.text
    reader = {"Authorization": f"Bearer {made.json()['token']}"}
    assert (await api.get("/api/v1/workers", headers=reader)).status_code == 200
    assert (await api.get("/api/v1/workers?all=true", headers=reader)).status_code == 200
    for header in ("", "Bearer wrong"):
        refused = await api.get("/api/v1/workers", headers={"Authorization": header})
        assert refused.status_code == 401


def test_the_heartbeat_period_is_bounded() -> None:
    """At most 20 s, so that a live worker beats three times within the minute it is alive."""
    assert Settings(worker_heartbeat_seconds=20, _env_file=None).worker_heartbeat_seconds == 20
    for wrong in (0, 21):
        with pytest.raises(ValidationError, match="worker_heartbeat_seconds"):
            Settings(worker_heartbeat_seconds=wrong, _env_file=None)


# --- a mailing that needs a worker while none is alive -------------------------------------------


def no_worker_lines(caplog: pytest.LogCaptureFixture, mailing_id: int) -> list[str]:
    """The 'no live worker' warnings about ``mailing_id``, as ``<event> status=<status>``."""
    return [
        f"{r.getMessage()} status={r.__dict__['status']}"
        for r in caplog.records
        if r.levelno == logging.WARNING
        and r.name == "notiflow.workers"
        and r.__dict__.get("mailing_id") == mailing_id
    ]


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_running_mailing_with_no_live_worker_warns_while_none_beats(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The API alone (`notiflow api`): a running mailing says no worker is alive, in every answer
    that shows it, and the log says so once per mailing every few minutes however often it is
    read; while a worker (of another process, known by its beats only) is alive, neither."""
    caplog.set_level(logging.WARNING, logger="notiflow.workers")
    monotonic = Monotonic()
    app.state.worker_watch = WorkerWatch(
        clock=clock, local_engine_running=lambda: False, monotonic=monotonic
    )
    await import_clients(api, 5)
    await insert_worker(app, "long-gone", last_beat_at=clock() - timedelta(minutes=2))
    created = await create_mailing(api, clock)
    assert created["status"] == "running"
    assert len(created["warnings"]) == 1
    assert created["warnings"][0].startswith("no live worker: ")
    mailing_id = created["id"]
    url = f"/api/v1/mailings/{mailing_id}"
    assert (await api.get(url)).json()["warnings"] == created["warnings"]
    listing = (await api.get("/api/v1/mailings")).json()
    assert [m["warnings"] for m in listing["items"]] == [created["warnings"]]
    for _ in range(5):
        await api.get(url)
    lines = no_worker_lines(caplog, mailing_id)
    assert len(lines) == 1, lines
    assert "status=running" in lines[0]
    monotonic.now += LOG_EVERY_SECONDS + 1
    await api.get(url)
    assert len(no_worker_lines(caplog, mailing_id)) == 2

    # Another process's worker beat 50 s ago: alive, for 10 s more.
    await insert_worker(app, "elsewhere", last_beat_at=clock() - timedelta(seconds=50))
    monotonic.now += LOG_EVERY_SECONDS + 1
    assert (await api.get(url)).json()["warnings"] == []
    assert len(no_worker_lines(caplog, mailing_id)) == 2
    clock.advance(seconds=11)
    assert (await api.get(url)).json()["warnings"] == created["warnings"]

    # A real engine, whose beats are all the API knows of it. Its provider refuses the token,
    # so the mailing stays running.
    engine = await start_engine(token="wrong", **BEAT)
    app.state.engine = None

    async def warned() -> bool:
        body = (await api.get(url)).json()
        assert body["status"] == "running"
        return bool(body["warnings"])

    async def quiet() -> bool:
        return not await warned()

    await wait_for(quiet, within=10)

    async def refused() -> bool:
        item = await listed(api, engine.worker)
        return item is not None and item["provider"] == "unauthorized"

    await wait_for(refused, within=10)
    await engine.stop()  # marked stopped: no worker is alive any more
    assert await warned()


async def test_a_scheduled_mailing_past_its_start_warns_and_a_future_one_does_not(
    api: httpx.AsyncClient, clock: LiveClock
) -> None:
    mailing = await create_mailing(api, clock, start_in=60)
    assert mailing["status"] == "scheduled"
    assert mailing["warnings"] == []
    clock.advance(seconds=120)
    late = (await api.get(f"/api/v1/mailings/{mailing['id']}")).json()
    assert late["status"] == "scheduled"
    assert len(late["warnings"]) == 1
    assert "cannot start" in late["warnings"][0]
    cancelled = await api.post(f"/api/v1/mailings/{mailing['id']}/cancel")
    assert cancelled.json()["warnings"] == []


async def test_the_engine_of_serve_is_a_live_worker_itself(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """In `notiflow serve` the engine runs in the API's process: while it runs, no mailing warns,
    whatever the table says (here its row is marked stopped, as if its beats were lost)."""
    caplog.set_level(logging.WARNING, logger="notiflow.workers")
    engine = await start_engine(**BEAT)

    async def seen() -> bool:
        return await listed(api, engine.worker) is not None

    await wait_for(seen, within=10)
    await engine.heartbeat.stop()
    assert await workers(api) == []
    await import_clients(api, 3)
    mailing = await create_mailing(api, clock)
    assert mailing["warnings"] == []
    assert no_worker_lines(caplog, mailing["id"]) == []
