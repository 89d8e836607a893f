from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from notiflow.core.body import JsonBody
from notiflow.core.errors import error_responses
from notiflow.core.pagination import Page, PageDep
from notiflow.core.types import BlankIsNone
from notiflow.deps import ClockDep, SessionDep
from notiflow.models import DeliveryStatus, Webhook, WebhookDelivery
from notiflow.webhooks import events, repository, service
from notiflow.webhooks.schemas import DeliveryRead, WebhookCreate, WebhookPatch, WebhookRead

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

WebhookId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The webhook's id.")]

_SIGNED = (
    'Every delivery is a POST of `{"id", "event", "created_at", "data"}` with the headers '
    "`Notiflow-Event`, `Notiflow-Delivery` (its id: receivers dedupe by it) and "
    '`Notiflow-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with the '
    "secret>`. Any 2xx answer is a success; anything else, a timeout or a connection error is "
    "retried with exponential back-off up to `NOTIFLOW_WEBHOOK_MAX_ATTEMPTS`."
)


def _read(webhook: Webhook, secret: str | None = None) -> WebhookRead:
    return WebhookRead(
        id=webhook.id,
        url=webhook.url,
        events=repository.split_events(webhook.events),
        active=webhook.active,
        secret=secret,
        created_at=webhook.created_at,
        updated_at=webhook.updated_at,
    )


def _delivery(delivery: WebhookDelivery) -> DeliveryRead:
    body = events.body(delivery.id, delivery.event, delivery.created_at, delivery.data)
    return DeliveryRead(
        id=delivery.id,
        webhook_id=delivery.webhook_id,
        event=delivery.event,
        status=DeliveryStatus(delivery.status),
        attempts=delivery.attempts,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        next_attempt_at=delivery.next_attempt_at,
        delivered_at=delivery.delivered_at,
        created_at=delivery.created_at,
        updated_at=delivery.updated_at,
        payload=json.loads(body),
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[JsonBody],
    summary="Register a webhook",
    description="The answer holds the signing secret (made by the server unless given): the "
    "only time it is shown, with the answer to a PATCH that rotates it. " + _SIGNED,
    responses=error_responses(401, 413, 415, 422),
)
async def create_webhook(data: WebhookCreate, session: SessionDep, clock: ClockDep) -> WebhookRead:
    webhook, secret = await service.create(session, data=data, clock=clock)
    return _read(webhook, secret)


@router.get(
    "",
    summary="List webhooks",
    description="Secrets are never shown here.",
    responses=error_responses(401, 422),
)
async def list_webhooks(session: SessionDep, page: PageDep) -> Page[WebhookRead]:
    webhooks, total = await service.list_page(session, limit=page.limit, offset=page.offset)
    return Page[WebhookRead](
        items=[_read(w) for w in webhooks], total=total, limit=page.limit, offset=page.offset
    )


@router.get(
    "/{webhook_id}",
    summary="Get a webhook",
    description="Its secret is never shown here.",
    responses=error_responses(401, 404, 422),
)
async def get_webhook(webhook_id: WebhookId, session: SessionDep) -> WebhookRead:
    return _read(await service.get(session, webhook_id))


@router.patch(
    "/{webhook_id}",
    dependencies=[JsonBody],
    summary="Change a webhook, or rotate its secret",
    description="Changes url, events and active; `rotate_secret: true` makes a new secret (or "
    "`secret` sets one), returned in this answer only. Deliveries already queued go to the new "
    "url, signed with the new secret.",
    responses=error_responses(401, 404, 413, 415, 422),
)
async def patch_webhook(
    webhook_id: WebhookId, data: WebhookPatch, session: SessionDep, clock: ClockDep
) -> WebhookRead:
    webhook, secret = await service.update(session, webhook_id, data=data, clock=clock)
    return _read(webhook, secret)


@router.delete(
    "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a webhook",
    description="Its deliveries go with it; those still queued are never sent.",
    responses=error_responses(401, 404, 422),
)
async def delete_webhook(webhook_id: WebhookId, session: SessionDep) -> None:
    await service.delete(session, webhook_id)


@router.post(
    "/{webhook_id}/ping",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a test event",
    description="Queues a `ping` delivery to this webhook (whatever events it subscribes to), "
    "sent at once; follow it in the deliveries. " + _SIGNED,
    responses=error_responses(401, 404, 409, 422),
)
async def ping_webhook(webhook_id: WebhookId, session: SessionDep, clock: ClockDep) -> DeliveryRead:
    return _delivery(await service.ping(session, webhook_id, clock=clock))


@router.get(
    "/{webhook_id}/deliveries",
    summary="List a webhook's deliveries, newest first",
    description="Every event queued for this webhook, with its attempts, the last answer or "
    "error, when it is next tried, and when it was delivered.",
    responses=error_responses(401, 404, 422),
)
async def list_deliveries(
    webhook_id: WebhookId,
    session: SessionDep,
    page: PageDep,
    status: Annotated[
        DeliveryStatus | None, BlankIsNone, Query(description="Only this status.")
    ] = None,
) -> Page[DeliveryRead]:
    rows, total = await service.deliveries(
        session, webhook_id, status=status, limit=page.limit, offset=page.offset
    )
    return Page[DeliveryRead](
        items=[_delivery(d) for d in rows], total=total, limit=page.limit, offset=page.offset
    )
