"""Messages with their clients' phones, and the CSV export of a mailing's messages."""

from __future__ import annotations

import asyncio
import csv
import io
import socket
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from notiflow.messages.export import HEADER, csv_chunks, prefers_csv
from notiflow.messages.repository import NewMessage
from notiflow.models import MessageStatus
from tests.conftest import TOKEN, FakeClock
from tests.delivery_support import wait_until
from tests.helpers import iso, make_client, make_mailing, seed_messages, serving

pytestmark = pytest.mark.usefixtures("db_url")


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def _clients(api: httpx.AsyncClient, count: int) -> dict[int, str]:
    """``count`` clients made by one import: {id: phone}."""
    phones = [f"7900{n:07d}" for n in range(count)]
    body = "phone\n" + "\n".join(phones) + "\n"
    response = await api.post(
        "/api/v1/clients/import", content=body, headers={"Content-Type": "text/csv"}
    )
    assert response.json()["created"] == count, response.text
    found: dict[int, str] = {}
    for offset in range(0, count, 1000):
        page = await api.get("/api/v1/clients", params={"limit": 1000, "offset": offset})
        found.update({c["id"]: c["phone"] for c in page.json()["items"]})
    return found


async def test_messages_carry_their_clients_phone(
    app: Any, api: httpx.AsyncClient, clock: FakeClock
) -> None:
    kept = await make_client(api, "79001234567")
    gone = await make_client(api, "79161234567")
    mailing = await make_mailing(api, clock.now, start_in=timedelta(0))
    await seed_messages(
        app,
        mailing["id"],
        [NewMessage(client_id=kept["id"]), NewMessage(client_id=gone["id"])],
        now=clock.now,
    )
    assert (await api.delete(f"/api/v1/clients/{gone['id']}")).status_code == 204
    items = (await api.get(f"/api/v1/mailings/{mailing['id']}/messages")).json()["items"]
    assert [(m["client_id"], m["phone"]) for m in items] == [
        (kept["id"], "79001234567"),
        (None, None),
    ]
    assert set(items[0]) == {
        "id",
        "mailing_id",
        "client_id",
        "phone",
        "status",
        "attempts",
        "created_at",
        "sent_at",
        "next_attempt_at",
        "last_error",
    }
    one = (await api.get(f"/api/v1/messages/{items[0]['id']}")).json()
    assert one == items[0]


async def test_csv_export_has_every_message_once_with_its_phone(
    app: Any, api: httpx.AsyncClient, clock: FakeClock
) -> None:
    """More messages than one chunk (5,000), some of them of deleted clients."""
    phones = await _clients(api, 6_000)
    mailing = await make_mailing(api, clock.now, start_in=timedelta(0))
    other = await make_mailing(api, clock.now, start_in=timedelta(0))
    ids = sorted(phones)
    sent_at = clock.now - timedelta(minutes=1)
    await seed_messages(
        app,
        mailing["id"],
        [
            NewMessage(client_id=client_id, status=MessageStatus.sent, attempts=1, sent_at=sent_at)
            if n % 3 == 0
            else NewMessage(client_id=client_id)
            for n, client_id in enumerate(ids)
        ],
        now=clock.now,
    )
    await seed_messages(app, other["id"], [NewMessage(client_id=ids[0])], now=clock.now)
    deleted = ids[10:15]
    for client_id in deleted:
        assert (await api.delete(f"/api/v1/clients/{client_id}")).status_code == 204

    response = await api.get(f"/api/v1/mailings/{mailing['id']}/messages?format=csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="mailing-{mailing["id"]}-messages.csv"'
    )
    assert response.text.splitlines()[0] == ",".join(HEADER)
    rows = _rows(response.text)
    assert len(rows) == 6_000
    message_ids = [int(row["id"]) for row in rows]
    assert message_ids == sorted(set(message_ids))  # each once, in order
    assert {row["mailing_id"] for row in rows} == {str(mailing["id"])}
    by_client = {int(row["client_id"]): row for row in rows if row["client_id"]}
    assert len(by_client) == 6_000 - len(deleted)
    assert all(row["phone"] == phones[owner] for owner, row in by_client.items())
    orphans = [row for row in rows if not row["client_id"]]
    assert len(orphans) == len(deleted)
    assert {row["phone"] for row in orphans} == {""}
    # Those not sent yet were cancelled with their client (n = 12 of 10..14 had been sent).
    assert sorted((row["status"], row["last_error"]) for row in orphans) == [
        *[("cancelled", "client deleted")] * 4,
        ("sent", ""),
    ]
    sent = [row for row in rows if row["status"] == "sent"]
    assert len(sent) == 2_000
    assert {row["sent_at"] for row in sent} == {iso(sent_at)}
    assert {row["attempts"] for row in sent} == {"1"}

    only_sent = await api.get(
        f"/api/v1/mailings/{mailing['id']}/messages",
        params={"status": "sent"},
        headers={"Accept": "text/csv"},
    )
    assert only_sent.headers["content-type"] == "text/csv; charset=utf-8"
    assert [row["id"] for row in _rows(only_sent.text)] == [row["id"] for row in sent]


async def test_csv_chunks_page_by_id(app: Any, api: httpx.AsyncClient, clock: FakeClock) -> None:
    """The stream itself, with small chunks: every row once, whatever the chunk size."""
    mailing = await make_mailing(api, clock.now, start_in=timedelta(0))
    await seed_messages(
        app, mailing["id"], [NewMessage(client_id=n) for n in range(1, 251)], now=clock.now
    )
    for size in (1, 7, 50, 250, 1000):
        chunks = [
            chunk
            async for chunk in csv_chunks(
                app.state.sessionmaker, mailing_id=mailing["id"], status=None, chunk_rows=size
            )
        ]
        rows = _rows(b"".join(chunks).decode())
        assert [int(row["client_id"]) for row in rows] == list(range(1, 251)), size
        assert len(chunks) == 1 + -(-250 // size), size  # the header, then the chunks
    assert app.state.db_engine.pool.checkedout() == 0


async def test_an_empty_export_is_the_header(api: httpx.AsyncClient, clock: FakeClock) -> None:
    mailing = await make_mailing(api, clock.now)
    response = await api.get(f"/api/v1/mailings/{mailing['id']}/messages?format=csv")
    assert response.status_code == 200
    assert response.text == ",".join(HEADER) + "\r\n"


async def test_format_and_accept(api: httpx.AsyncClient, clock: FakeClock) -> None:
    mailing = await make_mailing(api, clock.now)
    url = f"/api/v1/mailings/{mailing['id']}/messages"
    json_answer = await api.get(url, params={"format": "json"}, headers={"Accept": "text/csv"})
    assert json_answer.headers["content-type"] == "application/json"
    assert json_answer.json()["items"] == []
    assert (await api.get(url, params={"format": "xml"})).status_code == 422
    missing = await api.get("/api/v1/mailings/999/messages", params={"format": "csv"})
    assert missing.status_code == 404
    assert missing.json()["detail"] == "mailing 999 not found"


@pytest.mark.parametrize(
    ("accept", "csv_wanted"),
    [
        (None, False),
        ("", False),
        ("*/*", False),
        ("text/csv", True),
        ("TEXT/CSV; charset=utf-8", True),
        ("text/csv, application/json", True),
        ("application/json, text/csv", False),
        ("application/json;q=0.5, text/csv", True),
        ("text/csv;q=0", False),
        ("text/csv;q=bad", False),
        ("text/*", False),
    ],
)
def test_accept_header(accept: str | None, csv_wanted: bool) -> None:
    assert prefers_csv(accept) is csv_wanted


async def test_a_client_that_goes_away_leaves_nothing_open(
    app: Any, api: httpx.AsyncClient, clock: FakeClock
) -> None:
    """Over real HTTP: the client reads the start of a large export and hangs up. No session
    stays open, and the database takes writes at once (on SQLite a reader holding a transaction
    would hold the write lock)."""
    mailing = await make_mailing(api, clock.now, start_in=timedelta(0))
    await seed_messages(
        app, mailing["id"], [NewMessage(client_id=n) for n in range(1, 60_001)], now=clock.now
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    url = f"/api/v1/mailings/{mailing['id']}/messages?format=csv"
    async with serving(app) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
        # A client with a small receive window, so that the export cannot all be sent ahead
        # into the sockets' buffers: it is still being read when the client hangs up.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        begun: list[object] = []

        def count(connection: object) -> None:
            begun.append(connection)

        event.listen(app.state.db_engine.sync_engine, "begin", count)
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        writer.write(
            f"GET {url} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert (await reader.readexactly(4096)).count(b"\n") > 10
        writer.transport.abort()  # hang up, with most of the export unsent
        await wait_until(lambda: app.state.db_engine.pool.checkedout() == 0)
        await asyncio.sleep(0.5)
        # The stream stopped soon after: a transaction per chunk, not the 13 of all of them.
        assert len(begun) <= 6, len(begun)
        event.remove(app.state.db_engine.sync_engine, "begin", count)
        created = await asyncio.wait_for(
            c.post("/api/v1/clients", json={"phone": "79001234567"}, headers=auth), timeout=5
        )
        assert created.status_code == 201
        whole = await c.get(url, headers=auth)
        assert len(_rows(whole.text)) == 60_000
    assert app.state.db_engine.pool.checkedout() == 0
