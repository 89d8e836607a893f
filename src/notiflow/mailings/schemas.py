from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

from notiflow.clients.schemas import ClientRead
from notiflow.core.types import OperatorCode, Phone, Tag, UtcDatetime, check_text
from notiflow.models import MailingStatus
from notiflow.stats.schemas import MessageCounts

TEXT_MAX = 4096


def _naive_time(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("must be a local time without an offset, like 09:00")
    return value.replace(microsecond=0)


def _format_time(value: time) -> str:
    return value.strftime("%H:%M" if value.second == 0 else "%H:%M:%S")


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


LocalTime = Annotated[
    time,
    AfterValidator(_naive_time),
    PlainSerializer(_format_time, return_type=str),
    Field(examples=["09:00"]),
]


OperatorCodes = Annotated[list[OperatorCode], AfterValidator(_unique), Field(max_length=1000)]
Tags = Annotated[list[Tag], AfterValidator(_unique), Field(max_length=1000)]


class MailingFilter(BaseModel):
    """A client matches when its operator code is in ``operator_codes`` (if non-empty) AND its tag
    is in ``tags`` (if non-empty); the tag ``""`` stands for clients without a tag. Empty lists
    match every client."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"operator_codes": ["900", "916"], "tags": ["vip", ""]}]},
    )

    operator_codes: OperatorCodes = Field(
        default_factory=list, description="Empty: any operator code."
    )
    tags: Tags = Field(
        default_factory=list,
        description='Empty: any tag or none. "" selects the clients without a tag.',
    )


class MailingFilterPatch(BaseModel):
    """A JSON merge patch (RFC 7396) of a filter: a key sent replaces that list (``null``
    empties it); a key not sent keeps its current value."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"tags": ["vip"]}]})

    operator_codes: OperatorCodes | None = Field(default=None, description="null: any code.")
    tags: Tags | None = Field(default=None, description="null: any tag or none.")


class SendWindow(BaseModel):
    """Local hours of each client during which messages may go out; may wrap midnight."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"start": "09:00", "end": "21:00"}]}
    )

    start: LocalTime
    end: LocalTime

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start == self.end:
            raise ValueError("start and end must differ (leave send_window null for no window)")
        return self


class SendWindowPatch(BaseModel):
    """A JSON merge patch (RFC 7396) of a send window: the ends sent replace the current ones,
    and the result is checked as a whole; with no current window, both ends are needed."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"end": "22:00"}]})

    start: LocalTime | None = None
    end: LocalTime | None = None


_MAILING_EXAMPLE: dict[str, Any] = {
    "text": "Black Friday: 30% off everything until Sunday",
    "start_time": "2026-11-27T09:00:00Z",
    "end_time": "2026-11-29T21:00:00Z",
    "filter": {"operator_codes": ["900"], "tags": ["vip"]},
    "send_window": {"start": "09:00", "end": "21:00"},
}


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


# The length is checked first (so its error speaks of characters), then the content.
Text = Annotated[
    str,
    Field(min_length=1, max_length=TEXT_MAX),
    AfterValidator(_not_blank),
    AfterValidator(check_text),
]


class MailingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_MAILING_EXAMPLE]})

    text: Text = Field(description="The message text, 1 to 4096 characters, not only whitespace.")
    start_time: UtcDatetime = Field(description="When sending starts; no offset means UTC.")
    end_time: UtcDatetime = Field(
        description="After it nothing is sent; must be after start_time and in the future."
    )
    filter: MailingFilter | None = Field(
        default=None,
        description='Empty or null: every client. The tag "" selects clients without a tag.',
    )
    send_window: SendWindow | None = Field(
        default=None,
        description=(
            "Local hours of each client; null: any time. A window that, at every UTC offset a "
            "client may have (-14:00 to +14:00), stays shut from start_time (or now, if later) "
            "until end_time is refused: no client could get a message."
        ),
    )


class MailingReplace(MailingCreate):
    """The whole mailing, as for creation."""


class MailingPatch(BaseModel):
    """A JSON merge patch (RFC 7396): the fields sent change, the others keep their values;
    inside ``filter`` and ``send_window`` too."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"end_time": "2026-11-30T21:00:00Z"},
                {"filter": {"tags": ["vip", ""]}, "send_window": {"end": "22:00"}},
            ]
        },
    )

    text: Text | None = None
    start_time: UtcDatetime | None = None
    end_time: UtcDatetime | None = None
    filter: MailingFilterPatch | None = Field(
        default=None,
        description="The keys sent replace theirs (null empties one); null: every client.",
    )
    send_window: SendWindowPatch | None = Field(
        default=None,
        description="The ends sent replace theirs, checked as a whole; null removes the window.",
    )


class MailingRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    **_MAILING_EXAMPLE,
                    "status": "scheduled",
                    "created_at": "2026-11-22T10:00:00Z",
                    "updated_at": "2026-11-22T10:00:00Z",
                    "stats": MessageCounts().model_dump(),
                    "warnings": [],
                }
            ]
        }
    )

    id: int
    text: str
    start_time: datetime
    end_time: datetime
    filter: MailingFilter
    send_window: SendWindow | None
    status: MailingStatus
    paused_reason: str | None = Field(
        default=None,
        description="Why a paused mailing is paused: through the API, or by the engine.",
    )
    created_at: datetime
    updated_at: datetime
    stats: MessageCounts
    warnings: list[str] = Field(
        default_factory=list,
        description="What stands in the mailing's way; empty normally. `no live worker: …` "
        "while it is running (or scheduled with its start_time passed) and no worker has "
        "beaten in the last minute: nothing is sent until one runs (see GET /api/v1/workers).",
    )


class RetryFailed(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"include_expired": True}]}
    )

    include_expired: bool = Field(
        default=False, description="Also send the messages that expired (end_time passed)."
    )
    end_time: UtcDatetime | None = Field(
        default=None, description="A new end_time for the mailing; it must be in the future."
    )


class RetryFailedRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "requeued": 12,
                    "mailing": {
                        "id": 7,
                        **_MAILING_EXAMPLE,
                        "status": "running",
                        "paused_reason": None,
                        "created_at": "2026-11-22T10:00:00Z",
                        "updated_at": "2026-11-22T10:00:00Z",
                        "stats": MessageCounts().model_dump(),
                        "warnings": [],
                    },
                }
            ]
        }
    )

    requeued: int = Field(description="How many messages went back to the queue.")
    mailing: MailingRead


class TestSendCreate(BaseModel):
    """Where to send the test: a phone, or a client (exactly one)."""

    __test__ = False  # not a pytest test class, despite its name
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"phone": "79001234567"}]}
    )

    phone: Phone | None = Field(default=None, description="Any phone, client or not.")
    client_id: int | None = Field(default=None, ge=1, le=2**63 - 1, description="A client's id.")


class TestSendRead(BaseModel):
    __test__ = False
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 3,
                    "mailing_id": 7,
                    "client_id": None,
                    "phone": "79001234567",
                    "provider_message_id": 2**62 + 3,
                    "verdict": "sent",
                    "status_code": 200,
                    "error": None,
                    "latency_ms": 84,
                    "answer": '{"code": 0, "message": "OK"}',
                    "created_at": "2026-11-22T10:00:00Z",
                }
            ]
        },
    )

    id: int
    mailing_id: int
    client_id: int | None
    phone: str
    provider_message_id: int = Field(
        description="The id sent to the provider: 2^62 + id, apart from every message's id."
    )
    verdict: str = Field(description="sent · retry · fail · unauthorized: what the answer means.")
    status_code: int | None = Field(description="The provider's HTTP status; null: no answer.")
    error: str | None = Field(description="What went wrong, when it did.")
    latency_ms: int
    answer: str | None = Field(
        default=None, description="The start of the provider's answer (only right after sending)."
    )
    created_at: datetime


class AudiencePreview(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "matching": 120_400,
                    "opted_out": 400,
                    "audience": 120_000,
                    "in_window_now": 80_250,
                    "sample": [],
                }
            ]
        }
    )

    matching: int = Field(description="Clients the filter selects, opted-out ones included.")
    opted_out: int = Field(description="Of those, clients who opted out: they get nothing.")
    audience: int = Field(description="Clients the mailing would be sent to.")
    in_window_now: int | None = Field(
        description="Of the audience, clients whose send window is open now; null: no window."
    )
    sample: list[ClientRead] = Field(description="Up to 10 clients of the audience, by id.")
