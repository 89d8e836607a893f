"""Validated field types shared by the API schemas, the CSV import and the CLI."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from notiflow.core.clock import as_utc
from notiflow.core.timezones import normalize_timezone

PHONE_MESSAGE = (
    "must be 11 digits starting with 7 (7XXXXXXXXXX); a leading + or 8 instead of 7, spaces, "
    "dashes and parentheses are allowed"
)
# What people put between the digits: spaces (any, NBSP included), dashes, parentheses.
_PHONE_SEPARATORS = re.compile(r"[\s()\-]+")
# The same rule, for the OpenAPI document.
PHONE_PATTERN = r"^\s*(\+[\s()-]*7|[\s()-]*[78])([\s()-]*[0-9]){10}[\s()-]*$"
_OPERATOR = re.compile(r"^\d{3}$")
TAG_MAX = 255


def normalize_phone(value: object) -> str:
    """The canonical ``7XXXXXXXXXX`` form of a phone as people write it, or ``ValueError``.

    Accepted: a string or an integer; a leading ``+``; spaces, dashes and parentheses anywhere
    (``+7 (900) 123-45-67``); and the Russian trunk prefix ``8`` in place of the country code
    (``8 900 123 45 67``, not after a ``+``). Ten digits without a country code are refused, with
    a hint: they could be from anywhere.
    """
    if isinstance(value, bool) or (isinstance(value, int) and value < 0):
        raise ValueError(PHONE_MESSAGE)
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(PHONE_MESSAGE)
    text = value.strip()
    international = text.startswith("+")
    digits = _PHONE_SEPARATORS.sub("", text[1:] if international else text)
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(PHONE_MESSAGE)
    if len(digits) == 11 and digits[0] == "8" and not international:
        digits = "7" + digits[1:]
    if len(digits) == 11 and digits[0] == "7":
        return digits
    if len(digits) == 10:
        raise ValueError(f"{PHONE_MESSAGE}; this has 10: put the country code 7 in front")
    raise ValueError(PHONE_MESSAGE)


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
                {"type": "string", "pattern": PHONE_PATTERN},
                {"type": "integer", "minimum": 70000000000, "maximum": 89999999999},
            ],
            "description": (
                "11 digits starting with 7, a string or an integer, stored as 7XXXXXXXXXX. "
                "A leading + or 8 (instead of 7), spaces, dashes and parentheses are accepted: "
                "+7 (900) 123-45-67 and 8 900 123 45 67 are 79001234567."
            ),
            "examples": ["79001234567", "+7 900 123-45-67"],
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


def _empty_is_none(value: str | None) -> str | None:
    return value or None


# A client's tag: "" and null both mean "no tag", stored as NULL.
ClientTag = Annotated[Tag | None, AfterValidator(_empty_is_none)]
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
