from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import httpx
import pytest

from notiflow.db.session import transaction
from notiflow.messages.repository import NewMessage
from notiflow.models import MessageStatus
from notiflow.stats import repository as counters
from tests.conftest import FakeClock
from tests.helpers import iso, make_client, make_mailing, seed_messages

pytestmark = pytest.mark.usefixtures("db_url")

STATUSES = [status.value for status in MessageStatus]


async def _clients(api: httpx.AsyncClient, count: int) -> list[dict[str, Any]]:
    body = "phone\n" + "".join(f"7900{i:07d}\n" for i in range(count))
    response = await api.post(
        "/api/v1/clients/import", content=body, headers={"Content-Type": "text/csv"}
    )
    assert response.json()["created"] == count
    return (await api.get("/api/v1/clients", params={"limit": 1000})).json()["items"]  # type: ignore[no-any-return]


async def test_detailed_stats_for_every_status(
    app: Any, api: httpx.AsyncClient, clock: FakeClock
) -> None:
    mailing = await make_mailing(api, clock.now, start_in=timedelta(0))
    clients = await _clients(api, 12)
    t0 = clock.now.replace(second=10)
    rows = [
        NewMessage(client_id=clients[0]["id"], status=MessageStatus.pending),
        NewMessage(
            client_id=clients[1]["id"],
            status=MessageStatus.pending,
            attempts=1,
            last_error="HTTP 503",
            next_attempt_at=t0 + timedelta(seconds=30),
        ),
        NewMessage(client_id=clients[2]["id"], status=MessageStatus.sending, attempts=1),
        NewMessage(client_id=clients[3]["id"], status=MessageStatus.sent, attempts=1, sent_at=t0),
        NewMessage(
            client_id=clients[4]["id"],
            status=MessageStatus.sent,
            attempts=3,
            sent_at=t0 + timedelta(minutes=2),
            last_error="timeout",
        ),
        NewMessage(
            client_id=clients[5]["id"],
            status=MessageStatus.sent,
            attempts=1,
            sent_at=t0 + timedelta(minutes=2, seconds=5),
        ),
        NewMessage(
            client_id=clients[6]["id"],
            status=MessageStatus.failed,
            attempts=1,
            last_error="HTTP 400",
        ),
        NewMessage(
            client_id=clients[7]["id"],
            status=MessageStatus.expired,
            attempts=2,
            last_error="HTTP 503",
        ),
        NewMessage(client_id=clients[8]["id"], status=MessageStatus.cancelled),
    ]
    await seed_messages(app, mailing["id"], rows, now=t0)
    response = await api.get(f"/api/v1/mailings/{mailing['id']}/stats")
    assert response.status_code == 200
    body = response.json()
    assert body["mailing_id"] == mailing["id"]
    assert body["status"] == "running"
    assert body["stats"] == {
        "total": 9,
        "pending": 2,
        "sending": 1,
        "sent": 3,
        "failed": 1,
        "expired": 1,
        "cancelled": 1,
    }
    assert body["first_sent_at"] == iso(t0)
    assert body["last_sent_at"] == iso(t0 + timedelta(minutes=2, seconds=5))
    assert body["attempts"] == {"total": 10, "retried_messages": 2}
    assert body["errors"] == [
        {"error": "HTTP 503", "count": 2},
        {"error": "HTTP 400", "count": 1},
        {"error": "timeout", "count": 1},
    ]
    minute = t0.replace(second=0)
    assert body["timeline"] == [
        {"at": iso(minute), "sent": 1, "failed": 1},
        {"at": iso(minute + timedelta(minutes=2)), "sent": 2, "failed": 0},
    ]
    # The list of the mailing and the mailing itself carry the same counts.
    assert (await api.get(f"/api/v1/mailings/{mailing['id']}")).json()["stats"] == body["stats"]


async def test_overall_stats(app: Any, api: httpx.AsyncClient, clock: FakeClock) -> None:
    empty = (await api.get("/api/v1/stats")).json()
    assert empty == {
        "total_mailings": 0,
        "mailings_by_status": {
            "scheduled": 0,
            "running": 0,
            "paused": 0,
            "completed": 0,
            "cancelled": 0,
        },
        "messages": dict.fromkeys(["total", *STATUSES], 0),
    }
    clients = await _clients(api, 6)
    a = await make_mailing(api, clock.now, start_in=timedelta(0))
    b = await make_mailing(api, clock.now, start_in=timedelta(0))
    await make_mailing(api, clock.now)
    await seed_messages(
        app,
        a["id"],
        [
            NewMessage(client_id=clients[0]["id"], status=MessageStatus.sent, sent_at=clock.now),
            NewMessage(client_id=clients[1]["id"], status=MessageStatus.failed),
        ],
        now=clock.now,
    )
    await seed_messages(
        app,
        b["id"],
        [NewMessage(client_id=c["id"], status=MessageStatus.pending) for c in clients],
        now=clock.now,
    )
    await api.post(f"/api/v1/mailings/{b['id']}/cancel")
    stats = (await api.get("/api/v1/stats")).json()
    assert stats["total_mailings"] == 3
    assert stats["mailings_by_status"] == {
        "scheduled": 1,
        "running": 1,
        "paused": 0,
        "completed": 0,
        "cancelled": 1,
    }
    assert stats["messages"] == {
        "total": 8,
        "pending": 0,
        "sending": 0,
        "sent": 1,
        "failed": 1,
        "expired": 0,
        "cancelled": 6,
    }


async def test_random_mixes_match_a_recount(
    app: Any, api: httpx.AsyncClient, clock: FakeClock
) -> None:
    """Counters equal a GROUP BY over the messages for random mixes and operations."""
    rng = random.Random(20261122)
    clients = await _clients(api, 60)
    mailings = [await make_mailing(api, clock.now, start_in=timedelta(0)) for _ in range(3)]
    for mailing in mailings:
        chosen = rng.sample(clients, rng.randint(10, 60))
        await seed_messages(
            app,
            mailing["id"],
            [
                NewMessage(
                    client_id=c["id"],
                    status=MessageStatus(rng.choice(STATUSES)),
                    attempts=rng.randint(0, 3),
                    sent_at=clock.now,
                )
                for c in chosen
            ],
            now=clock.now,
        )
    for client in rng.sample(clients, 15):  # deleting clients cancels their unsent messages
        assert (await api.delete(f"/api/v1/clients/{client['id']}")).status_code == 204
    await api.post(f"/api/v1/mailings/{mailings[1]['id']}/cancel")
    overall = dict.fromkeys(["total", *STATUSES], 0)
    for mailing in mailings:
        async with transaction(app.state.sessionmaker) as session:
            recount = await counters.recount(session, mailing["id"])
        api_counts = (await api.get(f"/api/v1/mailings/{mailing['id']}/stats")).json()["stats"]
        assert api_counts == recount
        for key, value in recount.items():
            overall[key] += value
        for status in STATUSES:
            listed = (
                await api.get(
                    f"/api/v1/mailings/{mailing['id']}/messages",
                    params={"status": status, "limit": 1000},
                )
            ).json()
            assert listed["total"] == len(listed["items"]) == recount[status]
    assert (await api.get("/api/v1/stats")).json()["messages"] == overall


async def test_deleting_a_client_keeps_sent_history(
    app: Any, api: httpx.AsyncClient, clock: FakeClock
) -> None:
    client = await make_client(api, "79001234567")
    running = await make_mailing(api, clock.now, start_in=timedelta(0))
    other = await make_mailing(api, clock.now, start_in=timedelta(0))
    await seed_messages(app, running["id"], [NewMessage(client_id=client["id"])], now=clock.now)
    await seed_messages(
        app,
        other["id"],
        [
            NewMessage(
                client_id=client["id"], status=MessageStatus.sent, sent_at=clock.now, attempts=1
            )
        ],
        now=clock.now,
    )
    assert (await api.delete(f"/api/v1/clients/{client['id']}")).status_code == 204
    pending = (await api.get(f"/api/v1/mailings/{running['id']}/messages")).json()["items"][0]
    assert (pending["status"], pending["client_id"], pending["last_error"]) == (
        "cancelled",
        None,
        "client deleted",
    )
    sent = (await api.get(f"/api/v1/mailings/{other['id']}/messages")).json()["items"][0]
    assert (sent["status"], sent["client_id"]) == ("sent", None)
    message = (await api.get(f"/api/v1/messages/{sent['id']}")).json()
    assert message == sent
    assert (await api.get(f"/api/v1/mailings/{running['id']}/stats")).json()["stats"][
        "cancelled"
    ] == 1


async def test_messages_pagination(app: Any, api: httpx.AsyncClient, clock: FakeClock) -> None:
    clients = await _clients(api, 25)
    mailing = await make_mailing(api, clock.now, start_in=timedelta(0))
    await seed_messages(
        app, mailing["id"], [NewMessage(client_id=c["id"]) for c in clients], now=clock.now
    )
    url = f"/api/v1/mailings/{mailing['id']}/messages"
    first = (await api.get(url, params={"limit": 10})).json()
    last = (await api.get(url, params={"limit": 10, "offset": 20})).json()
    assert first["total"] == last["total"] == 25
    assert len(first["items"]) == 10
    assert len(last["items"]) == 5
    ids = [m["id"] for m in first["items"]]
    assert ids == sorted(ids)
    assert first["items"][0]["status"] == "pending"
    assert (await api.get(url, params={"status": "bogus"})).status_code == 422
