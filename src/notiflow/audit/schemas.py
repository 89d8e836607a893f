from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AuditEntryRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 12,
                    "at": "2026-12-06T10:00:00Z",
                    "actor": "config#1",
                    "action": "mailing.cancel",
                    "method": "POST",
                    "route": "/api/v1/mailings/{mailing_id}/cancel",
                    "object_type": "mailing",
                    "object_id": 7,
                    "detail": {"request_id": "4f0c2a"},
                }
            ]
        },
    )

    id: int
    at: datetime = Field(description="When the write was made (it committed with this entry).")
    actor: str = Field(
        description="The token's name; tokens from the environment are `config#1`, `config#2`, "
        "… (NOTIFLOW_API_TOKENS), `config-send#1` …, `config-read#1` …, by their place in it."
    )
    action: str = Field(
        description="`<object type>.<verb>`: `mailing.create`, `mailing.update` (PATCH), "
        "`mailing.replace` (PUT), `mailing.delete`, `mailing.cancel`, `client.import`, "
        "`token.create` …"
    )
    method: str = Field(description="The HTTP method.")
    route: str = Field(description="The endpoint's path template.")
    object_type: str | None = Field(description="`mailing`, `client`, `token` …")
    object_id: int | None = Field(
        description="The object's id: from the path, or the new id of a create; null for "
        "writes to a whole collection (an import)."
    )
    detail: dict[str, Any] = Field(
        description="A little more: the `X-Request-ID` header when sent, the stored token's "
        "`token_id`, other path parameters, and what the operation adds (an import's counts, a "
        "client's masked phone). Never a token, never a whole phone number."
    )
