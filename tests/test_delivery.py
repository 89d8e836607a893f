"""The delivery engine against the sandbox provider over real HTTP, on SQLite and PostgreSQL.

Assertions are on what the sandbox actually received and on the messages' final states.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from notiflow.db.session import transaction
from notiflow.delivery.engine import Engine
from notiflow.models import Message
from tests.delivery_support import (
    ARRIVAL_LAG,
    LiveClock,
    ThreadedSandbox,
    assert_accepted_twice_only_when_the_answer_was_lost,
    attempts_maybe_unseen,
    wait_for,
)
from tests.helpers import iso

StartEngine = Callable[..., Awaitable[Engine]]


@pytest.fixture
def clock() -> LiveClock:
    return LiveClock()


async def import_clients(
    api: httpx.AsyncClient, count: int, *, start: int = 0, tag: str = "", timezone: str = "UTC"
) -> None:
    body = "phone,tag,timezone\n" + "".join(
        f"7900{start + i:07d},{tag},{timezone}\n" for i in range(count)
    )
    response = await api.post(
        "/api/v1/clients/import", content=body, headers={"Content-Type": "text/csv"}
    )
    assert response.json()["created"] == count, response.text


async def create_mailing(
    api: httpx.AsyncClient,
    clock: LiveClock,
    *,
    start_in: float = 0,
    duration: float = 3600,
    **extra: Any,
) -> dict[str, Any]:
    now = clock()
    response = await api.post(
        "/api/v1/mailings",
        json={
            "text": "hello from the tests",
            "start_time": iso(now + timedelta(seconds=start_in)),
            "end_time": iso(now + timedelta(seconds=start_in + duration)),
            **extra,
        },
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def get_stats(api: httpx.AsyncClient, mailing_id: int) -> dict[str, Any]:
    return (await api.get(f"/api/v1/mailings/{mailing_id}/stats")).json()  # type: ignore[no-any-return]


async def completed(api: httpx.AsyncClient, mailing_id: int) -> bool:
    status: str = (await get_stats(api, mailing_id))["status"]
    return status == "completed"


async def messages_of(app: Any, mailing_id: int) -> list[Message]:
    async with transaction(app.state.sessionmaker) as session:
        rows = await session.scalars(
            select(Message).where(Message.mailing_id == mailing_id).order_by(Message.id)
        )
        return list(rows)


async def assert_counters_match(app: Any, mailing_id: int) -> None:
    """Counters equal a recount, read in one statement, hence one snapshot on both databases."""
    statuses = ("pending", "sending", "sent", "failed", "expired", "cancelled")
    recount = ", ".join(
        f"(SELECT count(*) FROM messages WHERE mailing_id = :m AND status = '{s}')"
        for s in statuses
    )
    stored = ", ".join(f"s.{s}" for s in statuses)
    async with transaction(app.state.sessionmaker) as session:
        row = (
            await session.execute(
                text(f"SELECT {stored}, {recount} FROM mailing_stats s WHERE s.mailing_id = :m"),
                {"m": mailing_id},
            )
        ).one()
    assert dict(zip(statuses, row[:6], strict=True)) == dict(zip(statuses, row[6:], strict=True))


# --- the happy path ------------------------------------------------------------------------------


async def test_mailing_sends_every_message_once(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    await import_clients(api, 120)
    await start_engine()
    mailing = await create_mailing(api, clock)
    await wait_for(lambda: completed(api, mailing["id"]))
    stats = await get_stats(api, mailing["id"])
    assert stats["stats"]["sent"] == stats["stats"]["total"] == 120
    assert stats["attempts"] == {"total": 120, "retried_messages": 0}
    accepted = provider.accepted()
    messages = await messages_of(app, mailing["id"])
    assert sorted(accepted) == [m.id for m in messages]  # each message exactly once
    received = {e.id: e for e in provider.received}
    client_phones = {
        c["id"]: c["phone"]
        for c in (await api.get("/api/v1/clients", params={"limit": 1000})).json()["items"]
    }
    for message in messages:
        assert message.status == "sent"
        assert message.attempts == 1
        assert message.sent_at is not None
        entry = received[message.id]
        assert entry.text == "hello from the tests"
        assert str(entry.phone) == client_phones[message.client_id]
    assert sum(point["sent"] for point in stats["timeline"]) == 120
    await assert_counters_match(app, mailing["id"])


async def test_audience_follows_the_filter(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    await import_clients(api, 10, tag="vip")
    await import_clients(api, 10, start=100, tag="new")
    await api.patch("/api/v1/clients/1", json={"operator_code": "916"})
    await start_engine()
    mailing = await create_mailing(api, clock, filter={"tags": ["vip"], "operator_codes": ["900"]})
    await wait_for(lambda: completed(api, mailing["id"]))
    sent_phones = {e.phone for e in provider.received}
    assert sent_phones == {int(f"7900{i:07d}") for i in range(1, 10)}


async def test_future_start_is_on_time(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    await import_clients(api, 5)
    await start_engine(engine_poll_seconds=30)  # the scheduler must wake by the start time itself
    mailing = await create_mailing(api, clock, start_in=1.5)
    assert mailing["status"] == "scheduled"
    await wait_for(lambda: completed(api, mailing["id"]), within=10)
    start = clock().fromisoformat(mailing["start_time"].replace("Z", "+00:00")).timestamp()
    # Nothing before the start time (every request arrived after it), the first one soon after.
    first = min(e.at for e in provider.received)
    assert 0 <= first - start <= 1.0, first - start


async def test_materialising_twice_writes_nothing_more(
    app: Any, api: httpx.AsyncClient, clock: LiveClock
) -> None:
    from notiflow.delivery.queue import scheduling
    from notiflow.models import Mailing

    await import_clients(api, 30)
    mailing = await create_mailing(api, clock)
    async with transaction(app.state.sessionmaker) as session:
        assert await scheduling.materialise(session, mailing["id"], clock()) == 30
    async with transaction(app.state.sessionmaker) as session:
        row = await session.get(Mailing, mailing["id"])
        assert row is not None
        row.materialized_at = None  # as if a crash lost the mark but kept the rows
    async with transaction(app.state.sessionmaker) as session:
        assert await scheduling.materialise(session, mailing["id"], clock()) == 0
    assert len(await messages_of(app, mailing["id"])) == 30
    await assert_counters_match(app, mailing["id"])


# --- a misbehaving provider ----------------------------------------------------------------------

FAULTS: dict[str, dict[str, float]] = {
    "5xx": {"error_rate": 0.4},
    "garbage 200": {"garbage_rate": 0.4},
    "hangs": {"hang_rate": 0.2},
    "dropped connections": {"drop_rate": 0.4},
    "429 with Retry-After": {"throttle_rate": 0.4, "retry_after_seconds": 0},
    "latency and jitter": {"latency_ms": 40, "jitter_ms": 30},
    "mix": {
        "error_rate": 0.15,
        "garbage_rate": 0.1,
        "hang_rate": 0.05,
        "drop_rate": 0.1,
        "throttle_rate": 0.1,
        "retry_after_seconds": 0,
        "latency_ms": 5,
        "jitter_ms": 5,
    },
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_faults_end_with_every_message_sent_once(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
    fault: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await import_clients(api, 60)
    provider.configure(**dict(FAULTS[fault]))
    caplog.set_level(logging.DEBUG, logger="notiflow.engine")  # a line per attempt
    await start_engine(provider_timeout=0.3, breaker_window=1000, breaker_min_requests=1000)
    mailing = await create_mailing(api, clock)
    await wait_for(lambda: completed(api, mailing["id"]), within=40)
    messages = await messages_of(app, mailing["id"])
    assert {m.status for m in messages} == {"sent"}
    assert set(provider.accepted()) == {m.id for m in messages}
    assert_accepted_twice_only_when_the_answer_was_lost(provider, caplog.records)
    stats = await get_stats(api, mailing["id"])
    retried = [m for m in messages if m.attempts > 1]
    assert stats["attempts"]["retried_messages"] == len(retried)
    assert stats["attempts"]["total"] == sum(m.attempts for m in messages)
    requests = Counter(e.id for e in provider.received if e.id is not None)
    unseen = attempts_maybe_unseen(caplog.records)
    for message in messages:
        # Every request the provider got is an attempt; an attempt it did not get is one that
        # ended without an answer (timed out before arriving, a closed kept-alive connection).
        seen, made = requests[message.id], message.attempts
        assert seen <= made <= seen + unseen[message.id], (message.id, seen, made)
    if fault != "latency and jitter":
        assert retried, "the fault should have forced some retries"
        assert sum(e["count"] for e in stats["errors"]) == stats["attempts"]["total"] - 60
        assert all(m.last_error for m in retried)
    await assert_counters_match(app, mailing["id"])


async def test_4xx_fails_at_once(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    await import_clients(api, 60)
    provider.configure(reject_rate=0.5)
    await start_engine()
    mailing = await create_mailing(api, clock)
    await wait_for(lambda: completed(api, mailing["id"]))
    messages = await messages_of(app, mailing["id"])
    outcome = {e.id: e.outcome for e in provider.received}
    assert all(m.attempts == 1 for m in messages)
    for message in messages:
        expected = "sent" if outcome[message.id] == "ok" else "failed"
        assert message.status == expected
        if expected == "failed":
            assert message.last_error is not None
            assert message.last_error.startswith("HTTP 400")
    stats = await get_stats(api, mailing["id"])
    assert stats["errors"] == [{"error": "HTTP 400", "count": stats["stats"]["failed"]}]
    assert 0 < stats["stats"]["failed"] < 60


async def test_max_attempts_fails_the_message(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    await import_clients(api, 5)
    provider.configure(error_rate=1.0)
    await start_engine(send_max_attempts=3, breaker_window=1000, breaker_min_requests=1000)
    mailing = await create_mailing(api, clock)
    await wait_for(lambda: completed(api, mailing["id"]))
    messages = await messages_of(app, mailing["id"])
    assert {(m.status, m.attempts) for m in messages} == {("failed", 3)}
    assert all("gave up after 3 attempts" in (m.last_error or "") for m in messages)
    assert len(provider.received) == 15


async def test_nothing_is_sent_after_end_time_when_the_provider_is_down(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    await import_clients(api, 40)
    provider.configure(error_rate=0.5, hang_rate=0.5)
    await start_engine(provider_timeout=5.0, breaker_window=1000, breaker_min_requests=1000)
    mailing = await create_mailing(api, clock, duration=1.5)
    end = clock().fromisoformat(mailing["end_time"].replace("Z", "+00:00")).timestamp()
    await wait_for(lambda: completed(api, mailing["id"]), within=15)
    assert provider.received, "the engine should have tried"
    assert max(e.at for e in provider.received) <= end + ARRIVAL_LAG
    messages = await messages_of(app, mailing["id"])
    assert {m.status for m in messages} == {"expired"}
    for message in messages:
        # In-flight requests were cut at end_time: the messages expired right after it.
        assert message.last_error is not None


async def test_outage_trips_the_breaker_and_recovers(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    await import_clients(api, 200)
    provider.configure(error_rate=1.0)
    engine = await start_engine(breaker_min_requests=10, breaker_window=20, send_concurrency=4)
    mailing = await create_mailing(api, clock)
    await wait_for(lambda: _provider_state(engine, "circuit_open"), within=10)
    health = (await api.get("/health")).json()
    assert health["engine"]["provider"] in ("circuit_open", "circuit_half_open")
    assert health["status"] == "degraded"
    await asyncio.sleep(1.0)
    during = len(provider.received)
    # Without the breaker, 4 connections at full speed would have made thousands of requests.
    assert during < 60, during
    assert (await api.get("/api/v1/stats")).status_code == 200  # the API is unaffected
    provider.configure(error_rate=0.0)
    await wait_for(lambda: completed(api, mailing["id"]), within=30)
    assert len(set(provider.accepted())) == len(provider.accepted()) == 200
    assert engine.breaker_state() == "closed"


async def _provider_state(engine: Engine, state: str) -> bool:
    current: str = engine.health()["provider"]
    return current == state


async def test_wrong_token_pauses_sending_without_burning_the_queue(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    await import_clients(api, 50)
    engine = await start_engine(token="wrong-token", send_max_attempts=2)
    mailing = await create_mailing(api, clock)
    await wait_for(lambda: _provider_state(engine, "unauthorized"), within=10)
    await asyncio.sleep(1.0)
    health = (await api.get("/health")).json()
    assert health["status"] == "degraded"
    assert health["engine"]["provider"] == "unauthorized"
    assert "401" in health["engine"]["provider_error"]
    stats = await get_stats(api, mailing["id"])
    assert stats["stats"]["pending"] + stats["stats"]["sending"] == 50  # nothing failed
    probes = [e for e in provider.received if e.outcome == "unauthorized"]
    assert len(probes) <= 32 + 6  # the first round in flight, then one probe per pause
    provider.configure(token="wrong-token")  # the operator fixes the provider side
    await wait_for(lambda: completed(api, mailing["id"]), within=20)
    messages = await messages_of(app, mailing["id"])
    assert {m.status for m in messages} == {"sent"}
    assert all(m.attempts == 1 for m in messages)  # refused attempts do not count
    assert engine.health()["provider"] == "ok"


# --- send windows --------------------------------------------------------------------------------


async def test_send_window_in_each_clients_local_time(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    await import_clients(api, 5, timezone="UTC")  # 08:00 local: waits until 09:00
    await import_clients(api, 5, start=10, timezone="+01:00")  # 09:00 local: inside
    await import_clients(api, 5, start=20, timezone="Asia/Tokyo")  # 17:00: opens after the end
    day = clock().replace(hour=8, minute=0, second=0, microsecond=0) + timedelta(days=1)
    clock.set(day)
    await start_engine()
    mailing = await create_mailing(
        api, clock, duration=12 * 3600, send_window={"start": "09:00", "end": "10:00"}
    )
    await wait_for(lambda: _count(api, mailing["id"], "sent", 5))
    await wait_for(lambda: _count(api, mailing["id"], "expired", 5))
    await asyncio.sleep(0.5)
    messages = await messages_of(app, mailing["id"])
    waiting = [m for m in messages if m.status == "pending"]
    assert len(waiting) == 5
    assert {m.next_attempt_at for m in waiting} == {day.replace(hour=9)}
    assert all(m.attempts == 0 for m in waiting)
    assert len(provider.received) == 5
    clock.set(day.replace(hour=9, second=1))
    app.state.engine_signal.notify()
    await wait_for(lambda: completed(api, mailing["id"]))
    phones = {e.phone for e in provider.received}
    assert phones == {int(f"7900{i:07d}") for i in (*range(5), *range(10, 15))}
    expired = [m for m in await messages_of(app, mailing["id"]) if m.status == "expired"]
    assert all("window" in (m.last_error or "") for m in expired)


async def _count(api: httpx.AsyncClient, mailing_id: int, status: str, expected: int) -> bool:
    return (await get_stats(api, mailing_id))["stats"][status] == expected  # type: ignore[no-any-return]


async def test_changing_the_window_of_a_running_mailing(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    await import_clients(api, 10)
    clock.set(clock().replace(hour=12, minute=0) + timedelta(days=1))
    await start_engine()
    mailing = await create_mailing(
        api, clock, duration=12 * 3600, send_window={"start": "20:00", "end": "21:00"}
    )
    await wait_for(lambda: _all_deferred(app, mailing["id"], 10))
    assert provider.received == []
    response = await api.patch(
        f"/api/v1/mailings/{mailing['id']}",
        json={"send_window": {"start": "11:00", "end": "13:00"}},
    )
    assert response.status_code == 200
    await wait_for(lambda: completed(api, mailing["id"]), within=5)
    assert len(provider.accepted()) == 10


async def _all_deferred(app: Any, mailing_id: int, count: int) -> bool:
    messages = await messages_of(app, mailing_id)
    return len(messages) == count and all(
        m.status == "pending" and m.next_attempt_at is not None and m.next_attempt_at.hour == 20
        for m in messages
    )


# --- control while running -----------------------------------------------------------------------

SLOW = {"latency_ms": 100}


async def test_cancel_stops_sending_within_a_second(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    mailing = await _sending_slowly(api, clock, provider, start_engine)
    response = await api.post(f"/api/v1/mailings/{mailing['id']}/cancel")
    assert response.status_code == 200
    cancelled_at = clock().timestamp()
    await asyncio.sleep(1.5)
    assert max(e.at for e in provider.received) <= cancelled_at + 1.0
    stats = await get_stats(api, mailing["id"])
    assert stats["status"] == "cancelled"
    counts = stats["stats"]
    assert counts["sent"] + counts["cancelled"] == 300
    assert counts["pending"] == counts["sending"] == 0
    sent = {m.id for m in await messages_of(app, mailing["id"]) if m.status == "sent"}
    assert sent <= set(provider.accepted())
    assert len(provider.accepted()) - len(sent) <= 4  # at most what was in flight
    await assert_counters_match(app, mailing["id"])


async def _sending_slowly(
    api: httpx.AsyncClient, clock: LiveClock, provider: ThreadedSandbox, start_engine: StartEngine
) -> dict[str, Any]:
    """A 300-client mailing on a slow provider, a few messages already sent."""
    await import_clients(api, 300)
    provider.configure(**SLOW)
    await start_engine(send_concurrency=4)
    mailing = await create_mailing(api, clock)
    await wait_for(lambda: _count_at_least(api, mailing["id"], "sent", 5))
    return mailing


async def _count_at_least(api: httpx.AsyncClient, mailing_id: int, status: str, n: int) -> bool:
    return (await get_stats(api, mailing_id))["stats"][status] >= n  # type: ignore[no-any-return]


async def test_delete_stops_sending_within_a_second(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    mailing = await _sending_slowly(api, clock, provider, start_engine)
    assert (await api.delete(f"/api/v1/mailings/{mailing['id']}")).status_code == 204
    deleted_at = clock().timestamp()
    await asyncio.sleep(1.5)
    assert max(e.at for e in provider.received) <= deleted_at + 1.0
    assert await messages_of(app, mailing["id"]) == []
    assert (await api.get("/api/v1/stats")).json()["messages"]["total"] == 0


async def test_moving_end_time_earlier_expires_the_rest(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    mailing = await _sending_slowly(api, clock, provider, start_engine)
    new_end = clock() + timedelta(seconds=1)
    response = await api.patch(f"/api/v1/mailings/{mailing['id']}", json={"end_time": iso(new_end)})
    assert response.status_code == 200
    await wait_for(lambda: completed(api, mailing["id"]), within=10)
    assert max(e.at for e in provider.received) <= new_end.timestamp() + ARRIVAL_LAG
    counts = (await get_stats(api, mailing["id"]))["stats"]
    assert counts["sent"] + counts["expired"] == 300
    assert counts["expired"] > 0
    await assert_counters_match(app, mailing["id"])


async def test_deleted_clients_are_never_sent_to(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    await import_clients(api, 30)
    provider.configure(**SLOW)
    await start_engine(send_concurrency=1, send_batch_size=1)
    mailing = await create_mailing(api, clock)
    await wait_for(lambda: _count_at_least(api, mailing["id"], "sent", 1))
    clients = (await api.get("/api/v1/clients", params={"limit": 1000})).json()["items"]
    gone = clients[-5:]
    for client in gone:
        assert (await api.delete(f"/api/v1/clients/{client['id']}")).status_code == 204
    await wait_for(lambda: completed(api, mailing["id"]), within=20)
    received_phones = {str(e.phone) for e in provider.received}
    assert not received_phones & {c["phone"] for c in gone}
    counts = (await get_stats(api, mailing["id"]))["stats"]
    assert (counts["sent"], counts["cancelled"]) == (25, 5)


async def test_small_mailing_is_not_stuck_behind_a_large_one(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    await import_clients(api, 1500, tag="big")
    await import_clients(api, 10, start=5000, tag="small")
    provider.configure(latency_ms=20)
    await start_engine(send_concurrency=16)
    big = await create_mailing(api, clock, filter={"tags": ["big"]})
    await wait_for(lambda: _count_at_least(api, big["id"], "sent", 50))
    small = await create_mailing(api, clock, filter={"tags": ["small"]})
    await wait_for(lambda: completed(api, small["id"]), within=10)
    big_sent = (await get_stats(api, big["id"]))["stats"]["sent"]
    assert big_sent < 1500, "the small mailing had to wait for the large one"
    await wait_for(lambda: completed(api, big["id"]), within=30)


async def test_statistics_match_the_messages_at_every_moment(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    await import_clients(api, 400)
    provider.configure(**dict(FAULTS["mix"]))
    await start_engine(provider_timeout=0.3, breaker_window=1000, breaker_min_requests=1000)
    mailing = await create_mailing(api, clock)
    checks = 0
    while not await completed(api, mailing["id"]):
        await assert_counters_match(app, mailing["id"])
        checks += 1
        await asyncio.sleep(0.02)
        assert checks < 2000, "the mailing did not complete"
    await assert_counters_match(app, mailing["id"])
    assert checks > 3
    overall = (await api.get("/api/v1/stats")).json()
    assert overall["messages"]["sent"] == 400
    assert overall["mailings_by_status"]["completed"] == 1


async def test_outage_with_refused_connections_then_recovery(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    await import_clients(api, 150)
    provider.configure(latency_ms=10)
    engine = await start_engine(send_concurrency=4)
    mailing = await create_mailing(api, clock)
    await wait_for(lambda: _count_at_least(api, mailing["id"], "sent", 10))
    provider.outage(1.5)  # connections refused, kept-alive ones cut
    await wait_for(lambda: _provider_state(engine, "circuit_open"), within=5)
    assert (await api.get("/api/v1/stats")).status_code == 200
    await wait_for(lambda: completed(api, mailing["id"]), within=40)
    messages = await messages_of(app, mailing["id"])
    assert {m.status for m in messages} == {"sent"}
    accepted = provider.accepted()
    assert len(accepted) == len(set(accepted)) == 150
    errors = {e["error"] for e in (await get_stats(api, mailing["id"]))["errors"]}
    assert errors & {"connection refused", "connection lost", "connection error"}


async def test_rate_limit(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    await import_clients(api, 40)
    await start_engine(send_rate=20)
    mailing = await create_mailing(api, clock)
    await wait_for(lambda: completed(api, mailing["id"]), within=20)
    arrivals = sorted(e.at for e in provider.received)
    assert len(arrivals) == 40
    # A bucket of 20 per second, full at the start: at most 20 + 20 t requests started by time
    # t. The sandbox sees arrivals, each up to ARRIVAL_LAG after its start (the first one, which
    # opens the connection, the latest), hence t counts from ARRIVAL_LAG before the first one.
    for i, at in enumerate(arrivals):
        t = at - arrivals[0] + ARRIVAL_LAG
        assert i + 1 <= 20 + 20 * t + 1, (i, at - arrivals[0])
