"""Small helpers shared by the tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx

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
