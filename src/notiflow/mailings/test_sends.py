"""Test sends: a mailing's text to one phone, now, recorded apart from the mailing's statistics."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.clients import repository as clients
from notiflow.core.errors import Conflict, InvalidInput, NotFound
from notiflow.delivery.policy import Verdict
from notiflow.delivery.provider import ProviderAnswer
from notiflow.mailings import repository, service
from notiflow.models import TestSend

# Provider message ids of test sends: far above any message id, so that the provider, whose
# idempotency key is the id, never takes a test send for a message of a mailing.
PROVIDER_ID_BASE = 2**62


def provider_id(test_send: TestSend) -> int:
    return PROVIDER_ID_BASE + test_send.id


async def begin(
    session: AsyncSession,
    mailing_id: int,
    *,
    phone: str | None,
    client_id: int | None,
    now: datetime,
) -> tuple[TestSend, str]:
    """Record a test send about to go out; return it with the text to send."""
    if (phone is None) == (client_id is None):
        raise InvalidInput("send exactly one of phone and client_id")
    mailing = await service.get(session, mailing_id)
    if client_id is not None:
        client = await clients.get(session, client_id)
        if client is None:
            raise NotFound(f"client {client_id} not found", field="client_id")
    else:
        assert phone is not None
        client = await clients.get_by_phone(session, phone)
    if client is not None and client.opted_out_at is not None:
        raise Conflict(f"client {client.id} opted out: nothing is sent to it")
    record = TestSend(
        mailing_id=mailing.id,
        client_id=client.id if client is not None else None,
        phone=client.phone if client is not None else phone,
        verdict="sending",
        latency_ms=0,
        created_at=now,
    )
    session.add(record)
    await session.flush()
    return record, mailing.text


async def finish(session: AsyncSession, test_send_id: int, answer: ProviderAnswer) -> TestSend:
    record = await session.get(TestSend, test_send_id)
    assert record is not None
    record.verdict = answer.outcome.verdict.value
    record.status_code = answer.status_code
    failed = answer.outcome.verdict is not Verdict.sent
    record.error = (answer.outcome.detail or answer.outcome.error) if failed else None
    record.latency_ms = answer.latency_ms
    await session.flush()
    return record


async def list_page(
    session: AsyncSession, mailing_id: int, *, limit: int, offset: int
) -> tuple[Sequence[TestSend], int]:
    await service.get(session, mailing_id)
    return await repository.test_sends(session, mailing_id, limit=limit, offset=offset)
