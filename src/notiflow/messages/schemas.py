from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from notiflow.models import Message, MessageStatus


class MessageRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 42,
                    "mailing_id": 7,
                    "client_id": 1,
                    "phone": "79001234567",
                    "status": "sent",
                    "attempts": 2,
                    "created_at": "2026-11-22T10:00:00Z",
                    "sent_at": "2026-11-22T10:00:03Z",
                    "next_attempt_at": None,
                    "last_error": "HTTP 503",
                }
            ]
        },
    )

    id: int
    mailing_id: int
    client_id: int | None = Field(description="NULL once the client has been deleted.")
    phone: str | None = Field(
        description="The client's phone; NULL once the client has been deleted."
    )
    status: MessageStatus
    attempts: int = Field(description="Requests made to the provider for this message.")
    created_at: datetime
    sent_at: datetime | None = Field(description="When the provider accepted it.")
    next_attempt_at: datetime | None = Field(description="When the next attempt is due.")
    last_error: str | None = Field(description="What went wrong the last time, if anything.")

    @classmethod
    def of(cls, message: Message, phone: str | None) -> MessageRead:
        return cls(
            id=message.id,
            mailing_id=message.mailing_id,
            client_id=message.client_id,
            phone=phone,
            status=MessageStatus(message.status),
            attempts=message.attempts,
            created_at=message.created_at,
            sent_at=message.sent_at,
            next_attempt_at=message.next_attempt_at,
            last_error=message.last_error,
        )
