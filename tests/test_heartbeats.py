"""Worker heartbeats and GET /api/v1/workers. In-process engines on SQLite and PostgreSQL."""

from __future__ import annotations

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
