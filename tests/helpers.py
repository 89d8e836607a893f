"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import uvicorn

from notiflow.db.session import transaction
from notiflow.messages import repository as messages
from notiflow.messages.repository import NewMessage


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


async def make_client(api: httpx.AsyncClient, phone: str, **fields: Any) -> dict[str, Any]:
    response = await api.post("/api/v1/clients", json={"phone": phone, **fields})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def make_mailing(
    api: httpx.AsyncClient,
    now: datetime,
    *,
    start_in: timedelta = timedelta(hours=1),
    duration: timedelta = timedelta(hours=2),
    **fields: Any,
) -> dict[str, Any]:
    body = {
        "text": "hello",
        "start_time": iso(now + start_in),
        "end_time": iso(now + start_in + duration),
        **fields,
    }
    response = await api.post("/api/v1/mailings", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def seed_messages(
    app: Any, mailing_id: int, rows: Sequence[NewMessage], *, now: datetime
) -> None:
    async with transaction(app.state.sessionmaker) as session:
        await messages.insert_many(session, mailing_id, rows, now=now)


def error_fields(response: httpx.Response) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[int]:
    """Serve ``app`` with uvicorn (as `notiflow serve` does) on a free port of 127.0.0.1."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        http="httptools",
        ws="none",
        lifespan="off",
        log_config=None,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(1000):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        await task
