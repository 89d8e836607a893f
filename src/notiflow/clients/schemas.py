from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from notiflow.core.types import ClientTag, OperatorCode, Phone, TimeZoneName

_PHONE_SEPARATORS = re.compile(r"[\s()+\-]+")


def _phone_digits(value: str) -> str:
    digits = _PHONE_SEPARATORS.sub("", value)
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 11:
        raise ValueError(
            "must be 1 to 11 digits of a phone (spaces, dashes, + and parentheses are ignored)"
        )
    return digits


# Part of a phone, for a search: its digits (what people put between them is dropped).
PhonePart = Annotated[
    str,
    AfterValidator(_phone_digits),
    Field(max_length=64, examples=["1234567"]),
]

_CLIENT_EXAMPLE: dict[str, Any] = {
    "phone": "79001234567",
    "operator_code": "900",
    "tag": "vip",
    "timezone": "Europe/Moscow",
}


class ClientCreate(BaseModel):
    """A new client. ``operator_code`` defaults to digits 2–4 of the phone."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_CLIENT_EXAMPLE]})

    phone: Phone
    operator_code: OperatorCode | None = Field(
        default=None, description="3 digits; when omitted, digits 2–4 of the phone."
    )
    tag: ClientTag = Field(
        default=None, description='A free label, at most 255 characters; "" or null: no tag.'
    )
    timezone: TimeZoneName | None = Field(
        default=None,
        description="IANA name or fixed offset; when omitted, NOTIFLOW_DEFAULT_TIMEZONE.",
    )


class ClientReplace(ClientCreate):
    """The whole client, as for creation: omitted fields take their defaults."""


class ClientPatch(BaseModel):
    """Only the fields sent change."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"tag": "gold"}]})

    phone: Phone | None = None
    operator_code: OperatorCode | None = None
    tag: ClientTag = Field(default=None, description='"" or null removes the tag.')
    timezone: TimeZoneName | None = None


class ClientRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 1,
                    **_CLIENT_EXAMPLE,
                    "created_at": "2026-11-22T10:00:00Z",
                    "updated_at": "2026-11-22T10:00:00Z",
                }
            ]
        },
    )

    id: int
    phone: str = Field(description="11 digits starting with 7.")
    operator_code: str
    tag: str | None
    timezone: str
    opted_out_at: datetime | None = Field(
        default=None, description="When the client opted out; null: it receives mailings."
    )
    created_at: datetime
    updated_at: datetime


class ImportRejection(BaseModel):
    row: int = Field(description="1-based position of the record; the CSV header is not counted.")
    error: str = Field(description="Why the record was not imported.")


# How an import treats the clients that already exist (matched by phone): `merge` sets only the
# columns the records have, `replace` makes each record the client's whole state.
ImportMode = Literal["merge", "replace"]


class ImportResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "created": 2,
                    "updated": 1,
                    "rejected": [{"row": 4, "error": "phone: required"}],
                    "mode": "merge",
                    "ignored_columns": ["name"],
                }
            ]
        }
    )

    created: int = Field(description="New clients.")
    updated: int = Field(description="Existing clients (same phone), updated as `mode` says.")
    rejected: list[ImportRejection] = Field(description="Records that were not imported.")
    mode: ImportMode = Field(
        description=(
            "`merge`: existing clients got only the columns the records have; `replace`: "
            "each record was the client's whole state."
        )
    )
    ignored_columns: list[str] = Field(
        description="Columns (CSV) or keys (JSON) that are not client fields, hence ignored."
    )
