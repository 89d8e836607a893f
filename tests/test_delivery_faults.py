"""The engine under the faults that used to stop it or make it send twice, reproduced against the
real engine, the sandbox over HTTP and both databases.

Each test here failed before the engine was hardened: a probe lost on the way stopped delivery
for good; a failed write-back and slow sending made messages go out twice; an error outside the
database ended the engine while /health still said ok; an API cancel could deadlock with the
engine's writes.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text, update
from sqlalchemy.exc import OperationalError

from notiflow.db.session import transaction
from notiflow.delivery.engine import Engine
from notiflow.models import Client
from tests.delivery_support import LiveClock, ThreadedSandbox, wait_for, wait_until
from tests.test_delivery import (
    StartEngine,
    completed,
    create_mailing,
    get_stats,
    import_clients,
    messages_of,
)


@pytest.fixture
def clock() -> LiveClock:
    return LiveClock()


async def _state(engine: Engine) -> str:
    state: str = engine.health()["provider"]
    return state


def _probe_out(engine: Engine) -> bool:
    return engine.sender.gate.probe_out


@pytest.mark.parametrize("pause", ["circuit breaker", "refused token"])
async def test_a_probe_lost_on_the_way_does_not_stop_delivery(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
    pause: str,
) -> None:
    """The provider stops answering (or refuses the token); the one probe goes out and hangs;
    its mailing is cancelled while it is away; the provider heals: a new mailing is sent."""
    await import_clients(api, 8, tag="first")
    await import_clients(api, 10, start=100, tag="second")
    if pause == "circuit breaker":
        provider.configure(hang_rate=1.0)
        engine = await start_engine(
            provider_timeout=2.0,
            send_lease_seconds=6.0,
            breaker_window=4,
            breaker_min_requests=4,
            send_concurrency=4,
        )
        paused, probing = "circuit_open", "circuit_half_open"
    else:
        provider.configure(token="the-new-token")
        engine = await start_engine(
            provider_timeout=2.0, send_lease_seconds=6.0, send_concurrency=4
        )
        paused, probing = "unauthorized", "unauthorized"
    first = await create_mailing(api, clock, filter={"tags": ["first"]})
    await wait_for(lambda: _is(engine, paused))
    await wait_until(lambda: engine.sender.in_flight == 0 or pause == "circuit breaker")
    provider.configure(hang_rate=0.0, latency_ms=1500)  # the probe will be slow to answer
    before = len(provider.received)
    await wait_until(lambda: len(provider.received) > before and _probe_out(engine))
    assert await _state(engine) == probing
    assert (await api.post(f"/api/v1/mailings/{first['id']}/cancel")).status_code == 200
    await wait_until(lambda: not _probe_out(engine))  # the cancel stopped it
    provider.configure(latency_ms=0, token="sandbox-token")  # the provider heals
    second = await create_mailing(api, clock, filter={"tags": ["second"]})
    await wait_for(lambda: completed(api, second["id"]), within=15)
    assert (await get_stats(api, second["id"]))["stats"]["sent"] == 10
    assert await _state(engine) == "ok"


async def _is(engine: Engine, state: str) -> bool:
    return await _state(engine) == state


async def test_a_failed_write_back_sends_nothing_twice(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    await import_clients(api, 100)
    failed = {"left": 1}

    @event.listens_for(app.state.db_engine.sync_engine, "before_cursor_execute")
    def fail(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "COALESCE(v.last_error" in statement and failed["left"]:
            failed["left"] -= 1
            raise OperationalError(statement[:40], None, ConnectionError("injected"))

    await start_engine()
    mailing = await create_mailing(api, clock)
    await wait_for(lambda: completed(api, mailing["id"]))
    assert failed["left"] == 0
    assert len(provider.received) == 100  # one request per message: nothing sent twice
    assert (await get_stats(api, mailing["id"]))["stats"]["sent"] == 100


@pytest.mark.parametrize(
    "slow",
    [
        # 40 messages at 5/s take 8 s: claimed all at once, most would wait past a 3 s lease.
        {"send_rate": 5},
        # Two at a time, 0.4 s each: the last ones are held for 8 s.
        {"send_concurrency": 2, "latency_ms": 400},
    ],
    ids=["rate limit", "slow provider"],
)
async def test_messages_held_longer_than_a_lease_are_sent_once(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
    slow: dict[str, float],
) -> None:
    """Another worker's scheduler reclaims expired leases: here this engine's own, every 0.2 s.
    Leases of what a live worker holds are renewed, so none is taken from it."""
    settings = dict(slow)
    if "latency_ms" in settings:
        provider.configure(latency_ms=settings.pop("latency_ms"))
    await import_clients(api, 40)
    # The provider's timeout as long as the lease allows (a request starts only while the lease
    # surely lasts past it): a 0.4 s answer held up by a loaded machine (the sandbox is a thread
    # of this process) must not time out, since a lost answer is retried and may be accepted
    # twice by design — that is not what this test is about.
    await start_engine(send_lease_seconds=3.0, provider_timeout=2.0, **settings)
    mailing = await create_mailing(api, clock)
    await wait_for(lambda: completed(api, mailing["id"]), within=30)
    accepted = Counter(provider.accepted())
    assert len(accepted) == 40
    assert [n for n in accepted.values() if n > 1] == []
    assert (await get_stats(api, mailing["id"]))["stats"]["sent"] == 40


async def test_an_error_outside_the_database_does_not_end_the_engine(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    """A time zone the system does not know (stored before a tzdata update, say) made a claim
    raise a ValueError, which ended the whole engine while /health still answered 200."""
    await import_clients(api, 6)
    async with transaction(app.state.sessionmaker) as session:
        await session.execute(update(Client).where(Client.id == 4).values(timezone="Mars/Base"))
    engine = await start_engine()
    mailing = await create_mailing(api, clock, send_window={"start": "00:00", "end": "23:59"})
    await wait_for(lambda: completed(api, mailing["id"]), within=15)
    counts = (await get_stats(api, mailing["id"]))["stats"]
    assert (counts["sent"], counts["failed"]) == (5, 1)
    broken = next(m for m in await messages_of(app, mailing["id"]) if m.client_id == 4)
    # It would fail the same way at every try: it fails at once, saying why.
    assert (broken.last_error or "").startswith("cannot be sent: unknown time zone 'Mars/Base'")
    assert engine.running
    health = await api.get("/health")
    assert health.status_code == 200, health.json()


async def test_a_stalled_engine_makes_health_fail_and_say_why(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
    db_url: str,
) -> None:
    engine = await start_engine(engine_stall_seconds=1.0)
    await wait_until(lambda: not engine.problems())
    assert (await api.get("/health")).status_code == 200
    async with app.state.db_engine.connect() as blocker:
        # Another process holds a lock the engine needs: every round of its loops waits.
        if db_url.startswith("sqlite"):
            await blocker.exec_driver_sql("SELECT 1")  # BEGIN IMMEDIATE: the write lock
        else:
            await blocker.execute(text("LOCK TABLE mailings IN ACCESS EXCLUSIVE MODE"))
        await wait_until(lambda: bool(engine.problems()))
        health = await _health_while_blocked(app)
        assert health.status_code == 503
        body = health.json()
        assert body["status"] == "failing"
        assert "has not completed a round" in body["reason"]
        await blocker.rollback()
    await wait_until(lambda: not engine.problems())
    assert (await api.get("/health")).status_code == 200


async def _health_while_blocked(app: Any) -> httpx.Response:
    """/health answers even while the database hangs (its own check gives up after a while)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get("/health", timeout=30)


async def test_a_stopped_engine_makes_health_fail(
    app: Any, api: httpx.AsyncClient, start_engine: StartEngine
) -> None:
    engine = await start_engine()
    assert (await api.get("/health")).status_code == 200
    await engine.stop()
    health = await api.get("/health")
    assert health.status_code == 503
    assert health.json()["reason"] == "the delivery engine is not running"


async def test_cancels_and_deletes_while_sending_at_full_speed(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    """The API's cancels and deletes lock messages in the same order as the engine's writes:
    neither waits for the other in a circle (a deadlock, answered with a 500)."""
    for tag in ("a", "b", "c"):
        await import_clients(api, 300, start=1000 * ord(tag), tag=tag)
    provider.configure(latency_ms=50)  # about 100 messages a second for each mailing
    await start_engine(send_concurrency=16, send_batch_size=50)
    mailings = [await create_mailing(api, clock, filter={"tags": [tag]}) for tag in "abc"]
    await wait_for(lambda: _sent_somewhere(api, [m["id"] for m in mailings]))
    clients = (await api.get("/api/v1/clients", params={"limit": 20, "tag": "c"})).json()["items"]
    answers = [
        await api.post(f"/api/v1/mailings/{mailings[0]['id']}/cancel"),
        await api.delete(f"/api/v1/mailings/{mailings[1]['id']}"),
        *[await api.delete(f"/api/v1/clients/{c['id']}") for c in clients],
    ]
    assert [r.status_code for r in answers] == [200, 204] + [204] * len(clients)
    await wait_for(lambda: completed(api, mailings[2]["id"]), within=30)
    counts = (await get_stats(api, mailings[2]["id"]))["stats"]
    assert counts["sent"] + counts["cancelled"] == 300


async def _sent_somewhere(api: httpx.AsyncClient, mailing_ids: list[int]) -> bool:
    for mailing_id in mailing_ids:
        if (await get_stats(api, mailing_id))["stats"]["sent"] < 5:
            return False
    return True
