from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from notiflow.models import MailingStatus

_COUNTS_EXAMPLE: dict[str, Any] = {
    "total": 100,
    "pending": 10,
    "sending": 5,
    "sent": 80,
    "failed": 2,
    "expired": 2,
    "cancelled": 1,
}


class MessageCounts(BaseModel):
    """Messages by status; every key is always present."""

    model_config = ConfigDict(json_schema_extra={"examples": [_COUNTS_EXAMPLE]})

    total: int = 0
    pending: int = 0
    sending: int = 0
    sent: int = 0
    failed: int = 0
    expired: int = 0
    cancelled: int = 0

    @classmethod
    def of(cls, counts: Mapping[str, int]) -> MessageCounts:
        return cls(**counts)


class AttemptStats(BaseModel):
    total: int = Field(description="Requests made to the provider.")
    retried_messages: int = Field(description="Messages that needed more than one request.")


class ErrorCount(BaseModel):
    error: str = Field(description="The kind of error an attempt ended with.")
    count: int = Field(description="Attempts that ended with it.")


class TimelinePoint(BaseModel):
    at: datetime = Field(description="Start of the minute.")
    sent: int = Field(description="Messages accepted by the provider in that minute.")
    failed: int = Field(description="Messages that failed for good in that minute.")


class MailingStatsRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "mailing_id": 7,
                    "status": "running",
                    "stats": _COUNTS_EXAMPLE,
                    "first_sent_at": "2026-11-22T10:00:01Z",
                    "last_sent_at": "2026-11-22T10:04:59Z",
                    "attempts": {"total": 95, "retried_messages": 6},
                    "errors": [{"error": "HTTP 503", "count": 9}],
                    "timeline": [{"at": "2026-11-22T10:00:00Z", "sent": 80, "failed": 2}],
                }
            ]
        }
    )

    mailing_id: int
    status: MailingStatus
    stats: MessageCounts
    first_sent_at: datetime | None
    last_sent_at: datetime | None
    attempts: AttemptStats
    errors: list[ErrorCount] = Field(description="Failed attempts by kind of error, most first.")
    timeline: list[TimelinePoint] = Field(description="Outcomes per minute, oldest first.")


class OverallStats(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "total_mailings": 3,
                    "mailings_by_status": {
                        "scheduled": 1,
                        "running": 1,
                        "completed": 1,
                        "cancelled": 0,
                    },
                    "messages": _COUNTS_EXAMPLE,
                }
            ]
        }
    )

    total_mailings: int
    mailings_by_status: dict[MailingStatus, int] = Field(
        description="Every status is present, with 0 when none."
    )
    messages: MessageCounts


class Timeline(BaseModel):
    """Messages per minute by outcome over a range of minutes, for all mailings or for one."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "mailing_id": 7,
                    "status": "running",
                    "start": "2026-11-22T10:00:00Z",
                    "end": "2026-11-22T10:02:00Z",
                    "points": [
                        {"at": "2026-11-22T10:00:00Z", "sent": 80, "failed": 2},
                        {"at": "2026-11-22T10:01:00Z", "sent": 0, "failed": 0},
                        {"at": "2026-11-22T10:02:00Z", "sent": 75, "failed": 1},
                    ],
                    "sent": 155,
                    "failed": 3,
                }
            ]
        }
    )

    mailing_id: int | None = Field(description="The mailing; null for every mailing together.")
    status: MailingStatus | None = Field(
        description="The mailing's status (null for every mailing): while it is `running`, "
        "later minutes may still change."
    )
    start: datetime | None = Field(
        description="The first minute of the range (UTC); null when the mailing has no outcome yet."
    )
    end: datetime | None = Field(
        description="The last minute of the range, included (UTC); null with `start`."
    )
    points: list[TimelinePoint] = Field(
        description="Every minute from `start` to `end`, oldest first, with 0 for a minute in "
        "which nothing happened (no gaps)."
    )
    sent: int = Field(description="Messages sent over the range.")
    failed: int = Field(description="Messages that failed for good over the range.")
