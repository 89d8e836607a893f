"""The sender's state machine on a provider in memory and a clock that moves only when told.

The database is real (SQLite and PostgreSQL); the provider is a fake that answers as each test
decides, so every path — a probe that never comes back, a lease that runs out, a write-back that
fails, an outbox that fills up — is reached exactly, in milliseconds, without sleeping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select, text, update

from notiflow.config import Settings
from notiflow.db.session import transaction
from notiflow.delivery.gate import Ticket
from notiflow.delivery.health import Loops
from notiflow.delivery.policy import SENT, Outcome, Verdict
from notiflow.delivery.queue import claims, scheduling
from notiflow.delivery.records import Done
from notiflow.delivery.sender import Sender
from notiflow.models import Client, Message, MessageStatus
from tests.conftest import FakeClock
from tests.delivery_support import wait_until
from tests.helpers import iso

pytestmark = pytest.mark.usefixtures("db_url")

FAIL = Outcome(Verdict.retry, "HTTP 503", "HTTP 503: unwell")


class FakeTime:
    """A monotonic clock that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeProvider:
    """A provider in memory: ``answer`` decides every outcome; ``hold`` keeps requests waiting
    until ``release``."""

    def __init__(self) -> None:
        self.requests: list[int] = []
        self.answer: Callable[[int], Outcome] = lambda _id: SENT
        self._gate = asyncio.Event()
        self._gate.set()

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    async def send(self, message_id: int, phone: str, text: bytes, *, seconds: float) -> Outcome:
        self.requests.append(message_id)
        await self._gate.wait()
        return self.answer(message_id)


class Harness:
    def __init__(self, app: Any, api: httpx.AsyncClient, settings: Settings, clock: FakeClock):
        self.app, self.api, self.clock = app, api, clock
        self.settings = settings.model_copy(
            update={
                "send_concurrency": 4,
                "send_batch_size": 8,
                "breaker_window": 4,
                "breaker_min_requests": 4,
                "send_lease_seconds": 60,
            }
        )
        self.time = FakeTime()
        self.provider = FakeProvider()
        self.stop = asyncio.Event()
        self.wake = asyncio.Event()
        self.sender: Sender | None = None
        self._task: asyncio.Task[None] | None = None

    def make(self, **overrides: Any) -> Sender:
        self.sender = Sender(
            settings=self.settings.model_copy(update=overrides),
            sessionmaker=self.app.state.sessionmaker,
            clock=self.clock,
            provider=self.provider,
            worker="test-worker",
            wake=self.wake,
            loops=Loops(stall_seconds=60, monotonic=self.time),
            monotonic=self.time,
        )
        return self.sender

    async def start(self, **overrides: Any) -> Sender:
        sender = self.make(**overrides)
        self._task = asyncio.create_task(sender.run(self.stop))
        return sender

    async def finish(self) -> None:
        self.stop.set()
        if self._task is not None:
            await self._task

    async def mailing(self, clients: int, *, tag: str = "t", **extra: Any) -> int:
        """A running mailing with its audience of ``clients`` new clients written."""
        start = await self._count_clients()
        body = "phone,tag\n" + "".join(f"7900{start + i:07d},{tag}\n" for i in range(clients))
        response = await self.api.post(
            "/api/v1/clients/import", content=body, headers={"Content-Type": "text/csv"}
        )
        assert response.json()["created"] == clients
        response = await self.api.post(
            "/api/v1/mailings",
            json={
                "text": "hi",
                "start_time": iso(self.clock.now),
                "end_time": iso(self.clock.now.replace(year=self.clock.now.year + 1)),
                "filter": {"tags": [tag]},
                **extra,
            },
        )
        mailing_id: int = response.json()["id"]
        async with transaction(self.app.state.sessionmaker) as session:
            assert await scheduling.materialise(session, mailing_id, self.clock.now) == clients
        self.wake.set()
        return mailing_id

    async def _count_clients(self) -> int:
        return int((await self.api.get("/api/v1/clients", params={"limit": 1})).json()["total"])

    async def statuses(self, mailing_id: int) -> dict[str, int]:
        counts: dict[str, int] = (
            await self.api.get(f"/api/v1/mailings/{mailing_id}/stats")
        ).json()["stats"]
        return {k: v for k, v in counts.items() if v and k != "total"}

    async def messages(self, mailing_id: int) -> list[Message]:
        async with transaction(self.app.state.sessionmaker) as session:
            rows = await session.scalars(
                select(Message).where(Message.mailing_id == mailing_id).order_by(Message.id)
            )
            return list(rows)


@pytest.fixture
async def harness(
    app: Any, api: httpx.AsyncClient, settings: Settings, clock: FakeClock
) -> AsyncIterator[Harness]:
    h = Harness(app, api, settings, clock)
    yield h
    await h.finish()


async def _open_the_breaker(h: Harness) -> Sender:
    """Four failed requests open the breaker (window 4, ratio 0.5)."""
    h.provider.answer = lambda _id: FAIL
    sender = await h.start(breaker_cooldown_seconds=5)
    first = await h.mailing(4, tag="first")
    await wait_until(lambda: sender.gate.state == "circuit_open")
    await wait_until(lambda: sender.in_flight == 0)
    assert len(h.provider.requests) == 4
    await h.api.post(f"/api/v1/mailings/{first}/cancel")
    h.wake.set()
    return sender


async def test_a_probe_cancelled_on_the_way_comes_back(harness: Harness) -> None:
    """The reproduction of the stuck probe: the probe hangs, its mailing is cancelled while it
    is away, the provider heals — and the next mailing is sent."""
    h = harness
    sender = await _open_the_breaker(h)
    h.provider.hold()
    h.provider.answer = lambda _id: SENT
    probed = await h.mailing(3, tag="probed")
    h.time.now += 6  # the cool-down is over: one probe goes, and hangs
    h.wake.set()
    await wait_until(lambda: len(h.provider.requests) == 5)
    assert sender.gate.probe_out
    await h.api.post(f"/api/v1/mailings/{probed}/cancel")
    h.wake.set()  # the sender sees the cancel and stops the request
    await wait_until(lambda: not sender.gate.probe_out)
    h.provider.release()
    fresh = await h.mailing(10, tag="fresh")
    await wait_until(lambda: sender.outbox.sent == 10)
    assert sender.gate.state == "ok"
    await h.finish()
    assert await h.statuses(fresh) == {"sent": 10}
    rows = [
        (m.id, m.status, m.claimed_by, m.last_error, m.attempts) for m in await h.messages(probed)
    ]
    assert (await h.statuses(probed)).keys() == {"cancelled"}, rows


@pytest.mark.parametrize("path", ["mailing gone", "end_time passed", "lease lost", "crash"])
async def test_a_probe_that_is_never_sent_comes_back(harness: Harness, path: str) -> None:
    """Every way a claimed message can end without an answer gives the probe back."""
    h = harness
    sender = await _open_the_breaker(h)
    await h.finish()  # drive the chain by hand from here
    mailing_id = await h.mailing(1, tag="one")
    sender = h.make(breaker_cooldown_seconds=5)
    await sender._refresh(force=True)
    assert await sender._claim(1) == 1
    gate = sender.gate
    for _ in range(4):  # the same state as above, in this sender
        gate.settle(Ticket.normal, FAIL)
    h.time.now += 6
    if path == "mailing gone":
        sender._mailings.pop(mailing_id)
        sender._texts.pop(mailing_id)
    elif path == "end_time passed":
        mailing = sender._mailings[mailing_id]
        ended = type(mailing)(
            mailing.id, mailing.text, h.clock.now, mailing.window_start, mailing.window_end
        )
        sender._know({**sender._mailings, mailing_id: ended})
    elif path == "lease lost":
        h.time.now += 3600
    else:

        def crash(_id: int) -> Outcome:
            raise RuntimeError("a bug")

        h.provider.answer = crash
    await sender._chain()
    assert not gate.probe_out
    assert gate.admit() is Ticket.probe  # the next probe may go at once
    expected = {"mailing gone": 0, "end_time passed": 0, "lease lost": 0, "crash": 1}[path]
    assert len(h.provider.requests) == 4 + expected
    assert len(sender.outbox) == 1
    await sender.outbox.flush()
    (message,) = await h.messages(mailing_id)
    if path == "end_time passed":
        assert message.status == "expired"
    else:  # back in the queue, to be tried again
        assert (message.status, message.claimed_by) == ("pending", None)
    if path == "crash":
        assert (message.last_error or "").startswith("internal error: RuntimeError('a bug')")


async def test_a_message_whose_lease_ran_out_is_not_sent(harness: Harness) -> None:
    h = harness
    mailing_id = await h.mailing(3)
    sender = h.make(send_lease_seconds=30)
    await sender._refresh(force=True)
    assert await sender._claim(3) == 3
    h.time.now += 25  # 30 s lease, 10 s timeout: no longer surely this worker's
    await sender._chain()
    assert h.provider.requests == []
    await sender.outbox.flush()
    assert {m.status for m in await h.messages(mailing_id)} == {"pending"}


async def test_renewed_leases_keep_messages_this_workers(harness: Harness) -> None:
    """The heartbeat renews in the database and in memory: a message held longer than a lease is
    still sent, and no other worker could have taken it meanwhile."""
    h = harness
    mailing_id = await h.mailing(3)
    sender = h.make(send_lease_seconds=3, provider_timeout=1)  # renewed every second
    await sender._refresh(force=True)
    assert await sender._claim(3) == 3
    h.time.now += 2.5  # no longer surely this worker's…
    h.clock.advance(seconds=2.5)
    assert not sender.leases.holds(next(iter(sender._ready)), 1, h.time.now)
    renewal = asyncio.create_task(sender.leases.run(h.stop))  # every second
    await wait_until(lambda: sender.leases.holds(next(iter(sender._ready)), 1, h.time.now))
    h.stop.set()
    await renewal
    async with transaction(h.app.state.sessionmaker) as session:
        leases = set(
            await session.scalars(
                select(Message.lease_expires_at).where(Message.mailing_id == mailing_id)
            )
        )
    assert leases == {h.clock.now + timedelta(seconds=3)}  # …until the renewal
    await sender._chain()
    assert len(h.provider.requests) == 3


async def test_a_late_heartbeat_does_not_win_back_leases_another_worker_took(
    harness: Harness,
) -> None:
    """A worker held up longer than a lease (an overloaded machine) finds its messages taken
    back by another worker's scheduler; its next renewal must not make them its own again."""
    h = harness
    mailing_id = await h.mailing(3)
    sender = h.make(send_lease_seconds=3, provider_timeout=1)
    await sender._refresh(force=True)
    assert await sender._claim(3) == 3
    h.time.now += 4
    h.clock.advance(seconds=4)
    async with transaction(h.app.state.sessionmaker) as session:
        assert await claims.reclaim_expired_leases(session, h.clock.now) == 3
    await sender.leases.renew()  # late: renews nothing in the database
    await sender._chain()
    assert h.provider.requests == []
    await sender.outbox.flush()
    assert {(m.status, m.claimed_by) for m in await h.messages(mailing_id)} == {("pending", None)}


async def test_what_waits_unwritten_is_bounded(harness: Harness) -> None:
    """While the outbox cannot write, at most a batch plus the requests in flight are sent."""
    h = harness
    mailing_id = await h.mailing(60)
    sender = h.make()
    await sender.outbox.lock.acquire()  # the database is slow: nothing can be written
    task = asyncio.create_task(sender.run(h.stop))
    h._task = task
    # Every chain waits for room (none holds a message) while the outbox is over a batch:
    # from then on nothing can be sent until something is written.
    await wait_until(
        lambda: sender.outbox.full and not any(sender._in_flight.values()),
    )
    assert 8 < len(h.provider.requests) <= 8 + 4  # send_batch_size + send_concurrency
    sender.outbox.lock.release()
    await wait_until(lambda: len(h.provider.requests) == 60)
    await h.finish()
    assert await h.statuses(mailing_id) == {"sent": 60}


async def test_a_failed_write_back_is_written_again_and_nothing_is_sent_twice(
    harness: Harness,
) -> None:
    h = harness
    failures = _fail_write_backs(h.app, times=3)
    mailing_id = await h.mailing(40)
    await h.start()
    await wait_until(lambda: len(h.provider.requests) == 40)
    await wait_until(lambda: failures["left"] == 0)
    await h.finish()
    assert await h.statuses(mailing_id) == {"sent": 40}
    assert sorted(h.provider.requests) == [m.id for m in await h.messages(mailing_id)]


def _fail_write_backs(app: Any, *, times: int) -> dict[str, int]:
    """Make the next ``times`` write-backs fail as if the connection broke."""
    from sqlalchemy.exc import OperationalError

    state = {"left": times}

    @event.listens_for(app.state.db_engine.sync_engine, "before_cursor_execute")
    def fail(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "COALESCE(v.last_error" in statement and state["left"] > 0:
            state["left"] -= 1
            raise OperationalError(statement[:40], None, ConnectionError("injected"))

    return state


async def test_a_bad_outcome_is_dropped_alone(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """An outcome that the database refuses for its own reason is isolated and dropped (its lease
    will bring it back); the others are stored."""
    h = harness
    mailing_id = await h.mailing(6)
    sender = h.make()
    await sender._refresh(force=True)
    assert await sender._claim(6) == 6
    outbox = sender.outbox
    claimed = list(sender._ready)
    for n, item in enumerate(claimed):
        sent_at: Any = h.clock.now
        if n == 3:
            sent_at = "not a time"  # the bad one
        outbox.put(Done(item.id, item.mailing_id, MessageStatus.sent, 1, True, sent_at=sent_at))
    writer = asyncio.create_task(outbox.run())
    with caplog.at_level(logging.ERROR, logger="notiflow.engine"):
        await wait_until(lambda: len(outbox) == 0)
    await outbox.close(within=1)
    await writer
    statuses = {m.id: m.status for m in await h.messages(mailing_id)}
    bad = claimed[3].id
    assert statuses.pop(bad) == "sending"
    assert set(statuses.values()) == {"sent"}
    dropped = [r for r in caplog.records if r.msg.startswith("could not store the outcome")]
    assert [r.message_id for r in dropped] == [bad]  # type: ignore[attr-defined]


async def test_a_time_zone_the_system_does_not_know_fails_one_message_not_the_engine(
    harness: Harness,
) -> None:
    h = harness
    mailing_id = await h.mailing(5, send_window={"start": "00:00", "end": "23:59"})
    async with transaction(h.app.state.sessionmaker) as session:
        await session.execute(update(Client).where(Client.id == 3).values(timezone="Mars/Base"))
    sender = await h.start()
    await wait_until(lambda: len(h.provider.requests) == 4)
    await wait_until(lambda: sender.outbox.sent == 4)
    await h.finish()
    messages = {m.client_id: m for m in await h.messages(mailing_id)}
    bad = messages.pop(3)
    assert bad.status == "failed"
    assert (bad.last_error or "").startswith("cannot be sent: unknown time zone")
    assert {m.status for m in messages.values()} == {"sent"}


async def test_a_crash_in_the_loop_is_survived(harness: Harness) -> None:
    """Any exception in a round (here: the database refuses a statement) is logged, backed off
    and retried; the loop goes on."""
    h = harness
    mailing_id = await h.mailing(5)
    broken = {"left": 2}

    @event.listens_for(h.app.state.db_engine.sync_engine, "before_cursor_execute")
    def fail(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM mailings" in statement and broken["left"] > 0:
            broken["left"] -= 1
            raise ValueError("a bug in a round")

    await h.start()
    await wait_until(lambda: len(h.provider.requests) == 5, within=15)
    await h.finish()
    assert broken["left"] == 0
    assert await h.statuses(mailing_id) == {"sent": 5}


async def test_stopping_gives_back_what_was_not_sent(harness: Harness) -> None:
    h = harness
    h.provider.hold()
    mailing_id = await h.mailing(30)
    sender = await h.start(provider_timeout=0.2, send_lease_seconds=1)
    await wait_until(lambda: sender.in_flight == 4)
    stopping = asyncio.create_task(h.finish())
    await wait_until(lambda: sender._stopping)
    h.provider.release()
    await stopping
    counts = await h.statuses(mailing_id)
    assert counts == {"sent": 4, "pending": 26}
    async with transaction(h.app.state.sessionmaker) as session:
        held = await session.scalar(
            text("SELECT count(*) FROM messages WHERE claimed_by IS NOT NULL")
        )
    assert held == 0
