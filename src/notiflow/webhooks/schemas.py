from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from notiflow.core.types import check_text
from notiflow.models import DeliveryStatus
from notiflow.webhooks.events import WebhookEvent

URL_MAX = 2048
SECRET_MIN = 16
SECRET_MAX = 128
URL_MESSAGE = "must be an http:// or https:// URL with a host"


def check_url(value: str) -> str:
    check_text(value)
    if value != value.strip() or any(c.isspace() or ord(c) < 32 for c in value):
        raise ValueError(f"{URL_MESSAGE}, without spaces")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a port that is not a number or out of range
        host = parts.hostname
    except ValueError:
        raise ValueError(URL_MESSAGE) from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise ValueError(URL_MESSAGE)
    if port == 0:
        raise ValueError(f"{URL_MESSAGE} (and a port from 1 to 65535)")
    try:
        host.encode("idna")
    except UnicodeError:
        raise ValueError(f"{URL_MESSAGE}: the host is not a valid name") from None
    return value


def check_secret(value: str) -> str:
    if not value.isascii() or not value.isprintable() or " " in value:
        raise ValueError("must be printable ASCII without spaces")
    return value


def _unique_events(values: list[WebhookEvent]) -> list[WebhookEvent]:
    return list(dict.fromkeys(values))


Url = Annotated[
    str,
    AfterValidator(check_url),
    Field(
        max_length=URL_MAX,
        description="Where deliveries are POSTed: an http:// or https:// URL with a host.",
        examples=["https://example.com/hooks/notiflow"],
    ),
]
Events = Annotated[
    list[WebhookEvent],
    AfterValidator(_unique_events),
    Field(
        min_length=1,
        max_length=len(WebhookEvent),
        description="The events to deliver (at least one).",
        examples=[["mailing.started", "mailing.completed", "message.failed"]],
    ),
]
Secret = Annotated[
    str,
    AfterValidator(check_secret),
    Field(
        min_length=SECRET_MIN,
        max_length=SECRET_MAX,
        description="The key that signs deliveries: 16 to 128 printable ASCII characters.",
        examples=["whsec_Zm9vYmFyYmF6cXV4cXV1eGNvcmdl"],
    ),
]

_WEBHOOK_EXAMPLE: dict[str, Any] = {
    "url": "https://example.com/hooks/notiflow",
    "events": ["mailing.started", "mailing.completed", "message.failed"],
}


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_WEBHOOK_EXAMPLE]})

    url: Url
    events: Events
    active: bool = Field(default=True, description="Whether deliveries go out.")
    secret: Secret | None = Field(
        default=None,
        description="The signing secret; when omitted the server makes one (`whsec_…`). Either "
        "way it is in this answer only.",
    )


class WebhookPatch(BaseModel):
    """Only the fields sent change."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"events": ["mailing.completed"]}, {"rotate_secret": True}]
        },
    )

    url: Url | None = None
    events: Events | None = None
    active: bool | None = Field(
        default=None,
        description="false stops deliveries: new events are not queued for it and queued "
        "deliveries wait (they go out once it is active again).",
    )
    rotate_secret: bool = Field(
        default=False,
        description="true: the server makes a new secret, returned in this answer only; "
        "deliveries are signed with it from now on, retries of older ones too.",
    )
    secret: Secret | None = Field(
        default=None, description="A new secret of your own (instead of rotate_secret)."
    )

    @model_validator(mode="after")
    def _one_secret(self) -> Self:
        if self.rotate_secret and self.secret is not None:
            raise ValueError("send either rotate_secret or secret, not both")
        return self


class WebhookRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 3,
                    **_WEBHOOK_EXAMPLE,
                    "active": True,
                    "secret": "whsec_Zm9vYmFyYmF6cXV4cXV1eGNvcmdl",
                    "created_at": "2026-12-06T10:00:00Z",
                    "updated_at": "2026-12-06T10:00:00Z",
                }
            ]
        }
    )

    id: int
    url: str
    events: list[WebhookEvent]
    active: bool
    secret: str | None = Field(
        default=None,
        description="The signing secret: only in the answer to its creation and to a PATCH that "
        "rotated or replaced it; null everywhere else.",
    )
    created_at: datetime
    updated_at: datetime


class DeliveryRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 1042,
                    "webhook_id": 3,
                    "event": "mailing.completed",
                    "status": "pending",
                    "attempts": 2,
                    "last_status_code": 503,
                    "last_error": "HTTP 503: Service Unavailable",
                    "next_attempt_at": "2026-12-06T10:00:30Z",
                    "delivered_at": None,
                    "created_at": "2026-12-06T10:00:00Z",
                    "updated_at": "2026-12-06T10:00:12Z",
                    "payload": {
                        "id": 1042,
                        "event": "mailing.completed",
                        "created_at": "2026-12-06T10:00:00.000Z",
                        "data": {
                            "mailing_id": 7,
                            "status": "completed",
                            "start_time": "2026-12-06T09:00:00.000Z",
                            "end_time": "2026-12-06T21:00:00.000Z",
                            "stats": {
                                "total": 2,
                                "pending": 0,
                                "sending": 0,
                                "sent": 1,
                                "failed": 1,
                                "expired": 0,
                                "cancelled": 0,
                            },
                            "at": "2026-12-06T10:00:00.000Z",
                        },
                    },
                }
            ]
        }
    )

    id: int = Field(description="The delivery's id, also in its body and `Notiflow-Delivery`.")
    webhook_id: int
    event: str = Field(description="The event's name (or `ping`).")
    status: DeliveryStatus = Field(
        description="`pending` (waiting for its next attempt), `sending` (an attempt is under "
        "way), `delivered` (a 2xx answer), `failed` (every attempt failed)."
    )
    attempts: int = Field(description="Attempts made so far.")
    last_status_code: int | None = Field(
        description="HTTP status of the last answer; null if none came (timeout, connection)."
    )
    last_error: str | None = Field(description="Why the last attempt failed, if it did.")
    next_attempt_at: datetime | None = Field(
        description="When the next attempt is due (while `sending`: when it is tried again "
        "should the attempt under way never be recorded); null once delivered or failed."
    )
    delivered_at: datetime | None
    created_at: datetime
    updated_at: datetime
    payload: dict[str, Any] = Field(description="The body that is POSTed, byte for byte its JSON.")
