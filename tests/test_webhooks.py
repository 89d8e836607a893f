"""Outgoing webhooks against a real HTTP receiver on 127.0.0.1, on SQLite and PostgreSQL.

The receiver checks signatures with the README's own snippet; mailings run end to end against
the sandbox provider. No sleeps as synchronisation: every wait polls with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any

import httpx
import pytest
from aiohttp import web
from sqlalchemy import func, select, text

from notiflow.db.session import transaction
from notiflow.delivery.engine import Engine
from notiflow.delivery.policy import RetryPolicy
from notiflow.delivery.queue import outcomes
from notiflow.mailings import service as mailings
from notiflow.models import Mailing, WebhookDelivery
from notiflow.webhooks.dispatcher import decide
from notiflow.webhooks.repository import ClaimedDelivery
from tests.delivery_support import LiveClock, ThreadedSandbox, wait_for, wait_until
from tests.helpers import error_fields, iso

StartEngine = Callable[..., Awaitable[Engine]]

# Webhook settings that make retries take tenths of a second.
FAST_WEBHOOKS: dict[str, Any] = {
    "webhook_timeout_seconds": 0.5,
    "webhook_retry_base_seconds": 0.1,
    "webhook_retry_max_seconds": 0.4,
    "webhook_max_attempts": 10,
}
ALL_EVENTS = [
    "mailing.started",
    "mailing.paused",
    "mailing.completed",
    "mailing.cancelled",
    "message.sent",
    "message.failed",
]
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _readme_verify() -> Callable[..., bool]:
    """The receiver's check, exactly as the README shows it."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Webhooks", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None, "the README's Webhooks section has no Python snippet"
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)
    return namespace["verify"]  # type: ignore[no-any-return]


verify = _readme_verify()


@pytest.fixture
def clock() -> LiveClock:
    return LiveClock()


# --- the receiver --------------------------------------------------------------------------------


@dataclass
class Got:
    """One request the receiver took."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # monotonic
    answer: int | str

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]

    @property
    def event(self) -> str:
        return self.headers["Notiflow-Event"]

    @property
    def delivery(self) -> int:
        return int(self.headers["Notiflow-Delivery"])


@dataclass
class Receiver:
    """An HTTP server that records every request and answers the first ones as planned (a
    status, or "hang": no answer for far longer than the sender waits), the rest ``default``."""

    plan: list[int | str] = field(default_factory=list)
    default: int = 200
    got: list[Got] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hooks"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        answer = self.plan.pop(0) if self.plan else self.default
        self.got.append(
            Got(request.path, dict(request.headers), await request.read(), time.monotonic(), answer)
        )
        if answer == "hang":
            await asyncio.sleep(30)
            answer = 200
        assert isinstance(answer, int)
        return web.Response(status=answer, text="fine" if answer < 300 else "not now")

    def of(self, event: str) -> list[Got]:
        return [g for g in self.got if g.event == event]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


# --- helpers -------------------------------------------------------------------------------------


async def create_webhook(api: httpx.AsyncClient, url: str, events: list[str], **extra: Any) -> Any:
    response = await api.post("/api/v1/webhooks", json={"url": url, "events": events, **extra})
    assert response.status_code == 201, response.text
    return response.json()


async def deliveries(api: httpx.AsyncClient, webhook_id: int, **params: Any) -> Any:
    response = await api.get(
        f"/api/v1/webhooks/{webhook_id}/deliveries", params={"limit": 1000, **params}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def delivery_rows(app: Any) -> int:
    async with transaction(app.state.sessionmaker) as session:
        return int(await session.scalar(select(func.count()).select_from(WebhookDelivery)) or 0)


async def import_clients(api: httpx.AsyncClient, count: int) -> None:
    body = "phone\n" + "".join(f"7900{i:07d}\n" for i in range(count))
    response = await api.post(
        "/api/v1/clients/import", content=body, headers={"Content-Type": "text/csv"}
    )
    assert response.json()["created"] == count, response.text


async def create_mailing(
    api: httpx.AsyncClient, clock: LiveClock, *, start_in: float = 0, duration: float = 3600
) -> Any:
    now = clock()
    response = await api.post(
        "/api/v1/mailings",
        json={
            "text": "hello",
            "start_time": iso(now + timedelta(seconds=start_in)),
            "end_time": iso(now + timedelta(seconds=start_in + duration)),
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


async def mailing_stats(api: httpx.AsyncClient, mailing_id: int) -> Any:
    return (await api.get(f"/api/v1/mailings/{mailing_id}/stats")).json()


# --- what an attempt makes of a delivery ---------------------------------------------------------

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
POLICY = RetryPolicy(base_seconds=10, max_seconds=60, max_attempts=5)


@pytest.mark.parametrize(
    ("attempts", "code", "error", "status", "wait"),
    [
        (0, 200, None, "delivered", None),
        (4, 204, None, "delivered", None),
        (0, 500, "HTTP 500", "pending", (5, 10)),
        (1, None, "no answer before the timeout", "pending", (10, 20)),
        (2, 410, "HTTP 410", "pending", (20, 40)),
        (3, 302, "HTTP 302", "pending", (30, 60)),  # capped at max_seconds
        (4, 500, "HTTP 500", "failed", None),  # the 5th attempt was the last
    ],
)
def test_what_an_attempt_makes_of_a_delivery(
    attempts: int, code: int | None, error: str | None, status: str, wait: Any
) -> None:
    claimed = ClaimedDelivery(1, 2, "ping", "{}", attempts, NOW, "http://x", "s" * 16)
    for seed in range(20):
        result = decide(
            claimed, status_code=code, error=error, now=NOW, policy=POLICY, rng=Random(seed)
        )
        assert result.status.value == status
        assert result.attempts == attempts + 1
        assert result.status_code == code
        assert result.error == error
        assert result.delivered_at == (NOW if status == "delivered" else None)
        if wait is None:
            assert result.next_attempt_at is None
        else:
            assert result.next_attempt_at is not None
            delay = (result.next_attempt_at - NOW).total_seconds()
            assert wait[0] <= delay <= wait[1]


# --- the API -------------------------------------------------------------------------------------


async def test_register_read_change_and_delete(api: httpx.AsyncClient) -> None:
    created = await create_webhook(api, "https://example.com/hooks", ["mailing.completed"])
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(secret) > 30
    assert created["events"] == ["mailing.completed"]
    assert created["active"] is True
    hook = f"/api/v1/webhooks/{created['id']}"

    read = (await api.get(hook)).json()
    assert read["secret"] is None
    assert {k: v for k, v in read.items() if k != "secret"} == {
        k: v for k, v in created.items() if k != "secret"
    }
    own = await create_webhook(
        api,
        "http://127.0.0.1:9/x?y=1",
        ["message.failed", "message.sent", "message.failed"],
        secret="my-own-secret-0123456789",
        active=False,
    )
    assert own["secret"] == "my-own-secret-0123456789"
    assert own["events"] == ["message.failed", "message.sent"]
    listed = await api.get("/api/v1/webhooks")
    assert listed.json()["total"] == 2
    assert [w["secret"] for w in listed.json()["items"]] == [None, None]
    assert secret not in listed.text
    assert "my-own-secret" not in listed.text

    changed = await api.patch(
        hook, json={"url": "https://example.org/new", "events": ALL_EVENTS, "active": False}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["url"] == "https://example.org/new"
    assert changed.json()["events"] == ALL_EVENTS
    assert changed.json()["active"] is False
    assert changed.json()["secret"] is None

    rotated = await api.patch(hook, json={"rotate_secret": True})
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != secret
    assert (await api.patch(hook, json={"secret": "x" * 16})).json()["secret"] == "x" * 16
    assert (await api.get(hook)).json()["secret"] is None

    assert (await api.post(f"{hook}/ping")).status_code == 409  # not active
    assert (await api.delete(hook)).status_code == 204
    assert (await api.get(hook)).status_code == 404
    assert (await api.delete(hook)).status_code == 404
    assert (await api.get("/api/v1/webhooks/999/deliveries")).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/x", "events": ["ping"]}, "url"),
        ({"url": "ftp://example.com/x", "events": ["mailing.started"]}, "url"),
        ({"url": "http://", "events": ["mailing.started"]}, "url"),
        ({"url": "example.com/hooks", "events": ["mailing.started"]}, "url"),
        ({"url": "http://exa mple.com/", "events": ["mailing.started"]}, "url"),
        ({"url": "http://example.com:99999/", "events": ["mailing.started"]}, "url"),
        ({"url": "https://" + "a" * 2100 + ".com", "events": ["mailing.started"]}, "url"),
        ({"url": "https://example.com", "events": []}, "events"),
        ({"url": "https://example.com", "events": ["mailing.exploded"]}, "events.0"),
        ({"url": "https://example.com"}, "events"),
        ({"url": "https://example.com", "events": ["ping"]}, "events.0"),
        (
            {"url": "https://example.com", "events": ["mailing.started"], "secret": "short"},
            "secret",
        ),
        (
            {"url": "https://example.com", "events": ["mailing.started"], "secret": "é" * 20},
            "secret",
        ),
    ],
)
async def test_invalid_webhooks_are_422(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await api.post("/api/v1/webhooks", json=body)
    assert response.status_code == 422, response.text
    assert field in error_fields(response)


async def test_invalid_changes_are_422(api: httpx.AsyncClient) -> None:
    hook = (await create_webhook(api, "https://example.com/", ["mailing.started"]))["id"]
    for body, name in [
        ({"url": None}, "url"),
        ({"events": None}, "events"),
        ({"active": None}, "active"),
        ({"url": "mailto:me@example.com"}, "url"),
        ({"rotate_secret": True, "secret": "x" * 20}, ""),
    ]:
        response = await api.patch(f"/api/v1/webhooks/{hook}", json=body)
        assert response.status_code == 422, (body, response.text)
        assert name in error_fields(response), (body, response.text)


# --- events are queued in the transaction of the change -----------------------------------------


async def test_api_starts_and_cancels_queue_mailing_events(
    app: Any, api: httpx.AsyncClient, clock: LiveClock
) -> None:
    told = await create_webhook(
        api, "https://example.com/a", ["mailing.started", "mailing.cancelled"]
    )
    other = await create_webhook(api, "https://example.com/b", ["mailing.completed"])
    asleep = await create_webhook(api, "https://example.com/c", ALL_EVENTS, active=False)
    await import_clients(api, 3)
    running = await create_mailing(api, clock)  # starts at once
    scheduled = await create_mailing(api, clock, start_in=3600)
    started = await api.post(f"/api/v1/mailings/{scheduled['id']}/start")
    assert started.status_code == 200
    cancelled = await api.post(f"/api/v1/mailings/{scheduled['id']}/cancel")
    assert cancelled.status_code == 200

    items = (await deliveries(api, told["id"]))["items"]
    assert [(d["event"], d["payload"]["data"]["mailing_id"]) for d in reversed(items)] == [
        ("mailing.started", running["id"]),
        ("mailing.started", scheduled["id"]),
        ("mailing.cancelled", scheduled["id"]),
    ]
    for delivery in items:
        assert delivery["status"] == "pending"
        assert delivery["attempts"] == 0
        assert delivery["payload"]["id"] == delivery["id"]
        assert delivery["payload"]["event"] == delivery["event"]
        assert TIMESTAMP.match(delivery["payload"]["created_at"])
    start_data = items[2]["payload"]["data"]
    assert start_data["status"] == "running"
    start_time = datetime.fromisoformat(running["start_time"])
    assert start_data["start_time"] == iso(start_time.replace(microsecond=0)).replace(
        "Z", f".{start_time.microsecond // 1000:03d}Z"
    )
    assert set(start_data["stats"]) == {
        "total",
        "pending",
        "sending",
        "sent",
        "failed",
        "expired",
        "cancelled",
    }
    cancel_data = items[0]["payload"]["data"]
    assert cancel_data["status"] == "cancelled"
    assert TIMESTAMP.match(cancel_data["at"])
    assert (await deliveries(api, other["id"]))["total"] == 0
    assert (await deliveries(api, asleep["id"]))["total"] == 0
    assert (await deliveries(api, told["id"], status="delivered"))["total"] == 0
    assert (await deliveries(api, told["id"], status="pending"))["total"] == 3


async def test_a_rolled_back_change_queues_nothing(
    app: Any, api: httpx.AsyncClient, clock: LiveClock
) -> None:
    await create_webhook(api, "https://example.com/a", ["mailing.cancelled"])
    mailing = await create_mailing(api, clock, start_in=3600)

    class Abort(Exception):
        pass

    async def cancel_then_fail() -> None:
        async with transaction(app.state.sessionmaker) as session:
            await mailings.cancel(session, mailing["id"], clock=clock, notify=lambda: None)
            inside = await session.scalar(select(func.count()).select_from(WebhookDelivery))
            assert inside == 1  # queued in this very transaction
            raise Abort

    with pytest.raises(Abort):
        await cancel_then_fail()
    assert await delivery_rows(app) == 0
    async with transaction(app.state.sessionmaker) as session:
        row = await session.get(Mailing, mailing["id"])
        assert row is not None
        assert row.status == "scheduled"
    cancelled = await api.post(f"/api/v1/mailings/{mailing['id']}/cancel")
    assert cancelled.status_code == 200
    assert await delivery_rows(app) == 1


# --- sending ----------------------------------------------------------------------------------


async def test_deliveries_are_signed_and_retried_until_delivered(
    app: Any, api: httpx.AsyncClient, receiver: Receiver, start_engine: StartEngine
) -> None:
    receiver.plan = [500, "hang", 503]
    hook = await create_webhook(api, receiver.url, ["mailing.completed"])
    await start_engine(**FAST_WEBHOOKS)
    pinged = await api.post(f"/api/v1/webhooks/{hook['id']}/ping")
    assert pinged.status_code == 202, pinged.text
    delivery_id = pinged.json()["id"]

    async def delivered() -> bool:
        return bool((await deliveries(api, hook["id"], status="delivered"))["total"])

    await wait_for(delivered, within=15)
    assert [g.answer for g in receiver.got] == [500, "hang", 503, 200]
    bodies = {g.body for g in receiver.got}
    assert len(bodies) == 1, "every attempt sends the same bytes"
    for got in receiver.got:
        assert got.path == "/hooks"
        assert got.headers["Content-Type"] == "application/json"
        assert got.event == "ping"
        assert got.delivery == delivery_id
        signature = got.headers["Notiflow-Signature"]
        assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", signature)
        assert verify(hook["secret"], signature, got.body)
        assert not verify("whsec_someone-else", signature, got.body)
        assert not verify(hook["secret"], signature, got.body.replace(b"ping", b"pong"))
    payload = receiver.got[0].json
    assert payload["id"] == delivery_id
    assert payload["event"] == "ping"
    assert payload["data"]["webhook_id"] == hook["id"]
    # Back-off: after attempt n, at least half of base × 2^(n-1) (and the hang's timeout).
    gaps = [b.at - a.at for a, b in zip(receiver.got, receiver.got[1:], strict=False)]
    assert gaps[0] >= 0.05 - 0.01
    assert gaps[1] >= 0.5 + 0.1 - 0.01
    assert gaps[2] >= 0.2 - 0.01
    (listed,) = (await deliveries(api, hook["id"]))["items"]
    assert listed["id"] == delivery_id
    assert listed["status"] == "delivered"
    assert listed["attempts"] == 4
    assert listed["last_status_code"] == 200
    assert listed["last_error"] is None
    assert listed["next_attempt_at"] is None
    assert listed["delivered_at"] is not None
    assert listed["payload"] == payload


async def test_deliveries_fail_after_the_last_attempt(
    app: Any, api: httpx.AsyncClient, receiver: Receiver, start_engine: StartEngine
) -> None:
    receiver.default = 500
    refusing = await create_webhook(api, receiver.url, ["mailing.completed"])
    nobody = await create_webhook(api, "http://127.0.0.1:9/closed", ["mailing.completed"])
    engine = await start_engine(**{**FAST_WEBHOOKS, "webhook_max_attempts": 3})
    for hook in (refusing, nobody):
        assert (await api.post(f"/api/v1/webhooks/{hook['id']}/ping")).status_code == 202

    async def both_failed() -> bool:
        failed = [await deliveries(api, h["id"], status="failed") for h in (refusing, nobody)]
        return all(page["total"] == 1 for page in failed)

    await wait_for(both_failed, within=15)
    assert [g.answer for g in receiver.got] == [500, 500, 500]
    (failed,) = (await deliveries(api, refusing["id"]))["items"]
    assert failed["attempts"] == 3
    assert failed["last_status_code"] == 500
    assert failed["last_error"] == "HTTP 500: not now"
    assert failed["next_attempt_at"] is None
    assert failed["delivered_at"] is None
    (unreachable,) = (await deliveries(api, nobody["id"]))["items"]
    assert unreachable["attempts"] == 3
    assert unreachable["last_status_code"] is None
    assert "connect" in unreachable["last_error"]
    assert engine.webhooks.failed == 2
    assert engine.problems() == []


async def test_a_real_mailing_tells_its_webhooks(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    receiver: Receiver,
    start_engine: StartEngine,
) -> None:
    await import_clients(api, 40)
    provider.configure(reject_rate=0.3)  # some messages fail at once
    hook = await create_webhook(api, receiver.url, ALL_EVENTS)
    engine = await start_engine(**FAST_WEBHOOKS)
    # The webhooks API's commit told this process's engine at once.
    await wait_until(
        lambda: engine.subscriptions.message_events() == {"message.sent", "message.failed"}
    )
    mailing = await create_mailing(api, clock, start_in=0.3)  # the scheduler starts it
    assert mailing["status"] == "scheduled"

    async def told_completed() -> bool:
        return bool(receiver.of("mailing.completed"))

    await wait_for(told_completed, within=20)
    stats = await mailing_stats(api, mailing["id"])
    assert stats["status"] == "completed"
    counts = stats["stats"]
    assert counts["sent"] + counts["failed"] == counts["total"] == 40
    assert 0 < counts["failed"] < 40

    async def all_told() -> bool:
        done = (await deliveries(api, hook["id"], status="delivered"))["total"]
        return bool(done == 2 + 40 and len(receiver.got) == 42)

    await wait_for(all_told, within=20)
    (started,) = receiver.of("mailing.started")
    assert started.json["data"]["mailing_id"] == mailing["id"]
    assert started.json["data"]["status"] == "running"
    (completed,) = receiver.of("mailing.completed")
    assert completed.json["data"]["status"] == "completed"
    assert completed.json["data"]["stats"] == counts
    assert len({g.delivery for g in receiver.got}) == len(receiver.got), "each one once"
    for got in receiver.got:
        assert verify(hook["secret"], got.headers["Notiflow-Signature"], got.body)
    phones = {
        c["id"]: c["phone"]
        for c in (await api.get("/api/v1/clients", params={"limit": 1000})).json()["items"]
    }
    told: Counter[str] = Counter()
    messages = set()
    for got in receiver.of("message.sent") + receiver.of("message.failed"):
        data = got.json["data"]
        told[data["status"]] += 1
        messages.add(data["message_id"])
        assert got.event == f"message.{data['status']}"
        assert data["mailing_id"] == mailing["id"]
        assert data["phone"] == phones[data["client_id"]]
        assert data["attempts"] == 1
        assert TIMESTAMP.match(data["at"])
        if data["status"] == "failed":
            assert data["error"].startswith("HTTP 400")
        else:
            assert data["error"] is None
    assert told == {"sent": counts["sent"], "failed": counts["failed"]}
    assert len(messages) == 40


async def test_no_event_is_written_when_nobody_subscribes(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    receiver: Receiver,
    start_engine: StartEngine,
) -> None:
    await import_clients(api, 30)
    provider.configure(reject_rate=0.3)
    await create_webhook(api, receiver.url, ALL_EVENTS, active=False)
    await create_webhook(api, receiver.url, ["mailing.paused"])
    engine = await start_engine(**FAST_WEBHOOKS)
    await wait_until(lambda: engine.subscriptions.events == {"mailing.paused"})
    assert engine.subscriptions.message_events() == frozenset()
    mailing = await create_mailing(api, clock)
    other = await create_mailing(api, clock, start_in=3600)
    assert (await api.post(f"/api/v1/mailings/{other['id']}/cancel")).status_code == 200

    async def completed() -> bool:
        return bool((await mailing_stats(api, mailing["id"]))["status"] == "completed")

    await wait_for(completed, within=20)
    assert (await mailing_stats(api, mailing["id"]))["stats"]["failed"] > 0
    assert await delivery_rows(app) == 0
    assert receiver.got == []
    # With nobody subscribed, PostgreSQL's write-back is the statement it was without webhooks.
    assert "webhook" not in outcomes._PG_WRITE_BACK.text
    assert "webhook_deliveries" in outcomes._PG_WRITE_BACK_WITH_EVENTS.text


async def test_workers_share_deliveries_without_sending_one_twice(
    app: Any, api: httpx.AsyncClient, receiver: Receiver, start_engine: StartEngine
) -> None:
    hook = await create_webhook(api, receiver.url, ["mailing.started"])
    for _ in range(30):
        assert (await api.post(f"/api/v1/webhooks/{hook['id']}/ping")).status_code == 202
    first = await start_engine(**FAST_WEBHOOKS, webhook_concurrency=4)
    second = await start_engine(**FAST_WEBHOOKS, webhook_concurrency=4)

    async def all_delivered() -> bool:
        return bool((await deliveries(api, hook["id"], status="delivered"))["total"] == 30)

    await wait_for(all_delivered, within=20)
    assert len(receiver.got) == 30
    assert len({g.delivery for g in receiver.got}) == 30
    assert first.webhooks.delivered + second.webhooks.delivered == 30


async def test_the_dispatcher_survives_database_errors_and_health_shows_them(
    app: Any, api: httpx.AsyncClient, receiver: Receiver, start_engine: StartEngine
) -> None:
    hook = await create_webhook(api, receiver.url, ["mailing.started"])
    assert (await api.post(f"/api/v1/webhooks/{hook['id']}/ping")).status_code == 202
    async with transaction(app.state.sessionmaker) as session:
        await session.execute(text("ALTER TABLE webhook_deliveries RENAME TO deliveries_away"))
    engine = await start_engine(**FAST_WEBHOOKS, engine_stall_seconds=1.0)

    def webhooks_stalled() -> bool:
        return any(problem.startswith("webhooks ") for problem in engine.problems())

    await wait_until(webhooks_stalled)
    health = await api.get("/health")
    assert health.status_code == 503
    assert "webhooks has not completed a round" in health.json()["reason"]
    assert "webhook_deliveries" in health.json()["reason"]  # the last error
    assert engine.running
    assert receiver.got == []
    async with transaction(app.state.sessionmaker) as session:
        await session.execute(text("ALTER TABLE deliveries_away RENAME TO webhook_deliveries"))
    await wait_until(lambda: len(receiver.got) == 1, within=15)
    await wait_until(lambda: not webhooks_stalled() and engine.health()["error"] is None)
