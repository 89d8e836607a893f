"""Rules of webhooks: creation, changes, secrets, pings, and the deliveries' history."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.core.clock import Clock
from notiflow.core.errors import Conflict, InvalidInput, NotFound
from notiflow.db.session import publish
from notiflow.delivery.notify import notify as engine_notify
from notiflow.models import DeliveryStatus, Webhook, WebhookDelivery
from notiflow.webhooks import events, repository, signing
from notiflow.webhooks.schemas import WebhookCreate, WebhookPatch


async def _tell_engines(session: AsyncSession, topic: str) -> None:
    """Once this transaction commits, engines look again at the webhooks (``events.CHANGED``)
    or at their deliveries (``events.QUEUED``): this process's at once, others' by NOTIFY
    (PostgreSQL) or at their next poll."""
    publish(session, topic)
    await engine_notify(session)


async def get(session: AsyncSession, webhook_id: int, *, for_update: bool = False) -> Webhook:
    webhook = await repository.get(session, webhook_id, for_update=for_update)
    if webhook is None:
        raise NotFound(f"webhook {webhook_id} not found")
    return webhook


async def create(
    session: AsyncSession, *, data: WebhookCreate, clock: Clock
) -> tuple[Webhook, str]:
    """Store a webhook; return it with its secret (shown only now)."""
    now = clock()
    secret = data.secret or signing.generate_secret()
    webhook = Webhook(
        url=data.url,
        events=repository.join_events([e.value for e in data.events]),
        secret=secret,
        active=data.active,
        created_at=now,
        updated_at=now,
    )
    await repository.add(session, webhook)
    await _tell_engines(session, events.CHANGED)
    return webhook, secret


async def update(
    session: AsyncSession, webhook_id: int, *, data: WebhookPatch, clock: Clock
) -> tuple[Webhook, str | None]:
    """Apply the fields sent; return the webhook, with its new secret if it was changed."""
    for name in ("url", "events", "active"):
        if name in data.model_fields_set and getattr(data, name) is None:
            raise InvalidInput("must not be null", field=name)
    webhook = await get(session, webhook_id, for_update=True)
    if data.url is not None:
        webhook.url = data.url
    if data.events is not None:
        webhook.events = repository.join_events([e.value for e in data.events])
    if data.active is not None:
        webhook.active = data.active
    secret = None
    if data.rotate_secret:
        secret = signing.generate_secret()
    elif data.secret is not None:
        secret = data.secret
    if secret is not None:
        webhook.secret = secret
    webhook.updated_at = clock()
    await session.flush()
    await _tell_engines(session, events.CHANGED)
    return webhook, secret


async def delete(session: AsyncSession, webhook_id: int) -> None:
    """Delete a webhook and its deliveries (those queued are never sent)."""
    await get(session, webhook_id, for_update=True)
    await repository.remove(session, webhook_id)
    await _tell_engines(session, events.CHANGED)


async def ping(session: AsyncSession, webhook_id: int, *, clock: Clock) -> WebhookDelivery:
    """Queue a ``ping`` delivery to one webhook, whatever it subscribes to."""
    webhook = await get(session, webhook_id)
    if not webhook.active:
        raise Conflict("the webhook is not active; PATCH it with active: true first")
    now = clock()
    delivery = await repository.queue_for_webhook(
        session,
        webhook_id=webhook.id,
        event=events.PING,
        data=events.encode({"webhook_id": webhook.id, "at": events.timestamp(now)}),
        now=now,
    )
    await _tell_engines(session, events.QUEUED)
    return delivery


async def list_page(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[Sequence[Webhook], int]:
    return await repository.list_page(session, limit=limit, offset=offset)


async def deliveries(
    session: AsyncSession,
    webhook_id: int,
    *,
    status: DeliveryStatus | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[WebhookDelivery], int]:
    await get(session, webhook_id)
    return await repository.list_deliveries(
        session, webhook_id=webhook_id, status=status, limit=limit, offset=offset
    )
