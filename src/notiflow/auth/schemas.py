from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from notiflow.auth.roles import Role
from notiflow.core.types import check_text

_TOKEN_EXAMPLE: dict[str, Any] = {
    "id": 3,
    "name": "dashboard",
    "role": "read",
    "created_at": "2026-12-06T10:00:00Z",
}


class TokenCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "dashboard", "role": "read"}]}
    )

    name: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
        AfterValidator(check_text),
    ] = Field(description="A label to recognise the token by (1–100 characters).")
    role: Role = Field(
        description="`read` (GET only), `send` (also create, edit, import and control clients "
        "and mailings) or `admin` (also DELETE, tokens, webhooks and the audit log)."
    )


class TokenRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [_TOKEN_EXAMPLE]}
    )

    id: int
    name: str
    role: Role
    created_at: datetime


class TokenCreated(TokenRead):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {**_TOKEN_EXAMPLE, "token": "nf_3q2-Vx0mB8k1x7bYc9kz1g0hJ4sQm2tW5uPzR8aLd0E"}
            ]
        }
    )

    token: str = Field(
        description="The bearer token itself. Shown only in this answer: only its hash is stored."
    )
