"""Validated field types shared by the API schemas, the CSV import and the CLI."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from notiflow.core.clock import as_utc
from notiflow.core.timezones import normalize_timezone

PHONE_MESSAGE = "must be 11 digits starting with 7 (7XXXXXXXXXX); a leading + is allowed"
_PHONE = re.compile(r"^\+?(7\d{10})$")
_OPERATOR = re.compile(r"^\d{3}$")
TAG_MAX = 255


def normalize_phone(value: object) -> str:
    if isinstance(value, bool):
        raise ValueError(PHONE_MESSAGE)
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(PHONE_MESSAGE)
    match = _PHONE.match(value.strip())
    if match is None:
        raise ValueError(PHONE_MESSAGE)
    return match.group(1)


def check_operator_code(value: str) -> str:
    if not _OPERATOR.match(value):
        raise ValueError("must be exactly 3 digits")
    return value


def check_text(value: str) -> str:
    """Refuse what no database can store: NUL characters and lone surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text") from exc
    return value


def check_tag(value: str) -> str:
    check_text(value)
    if len(value) > TAG_MAX:
        raise ValueError(f"must be at most {TAG_MAX} characters")
    return value


def _timezone(value: str) -> str:
    check_text(value)
    return normalize_timezone(value)


def _utc(value: datetime) -> datetime:
    try:
        return as_utc(value)
    except (OverflowError, ValueError) as exc:
        raise ValueError("is out of the supported date range") from exc


def _phone_before(value: Any) -> Any:
    return normalize_phone(value)


Phone = Annotated[
    str,
    BeforeValidator(_phone_before),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\+?7\d{10}$"},
                {"type": "integer", "minimum": 70000000000, "maximum": 79999999999},
            ],
            "description": "11 digits starting with 7, a string or an integer; + may lead.",
            "examples": ["79001234567"],
        }
    ),
]
OperatorCode = Annotated[
    str,
    AfterValidator(check_operator_code),
    Field(pattern=r"^\d{3}$", examples=["900"], description="Mobile operator code, 3 digits."),
]
Tag = Annotated[
    str,
    AfterValidator(check_tag),
    Field(
        max_length=TAG_MAX, examples=["vip"], description="A free label, at most 255 characters."
    ),
]
TimeZoneName = Annotated[
    str,
    AfterValidator(_timezone),
    Field(
        max_length=64,
        examples=["Europe/Moscow"],
        description="An IANA name (Europe/Moscow) or a fixed offset (+03:00, UTC).",
    ),
]
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
SafeText = Annotated[str, AfterValidator(check_text)]


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


# For optional query filters: `?tag=` means "no filter", not "the empty tag".
BlankIsNone = BeforeValidator(_blank_to_none)
