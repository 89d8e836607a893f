"""Client time zones: IANA names (``Europe/Moscow``) or fixed offsets (``+03:00``, ``UTC``)."""

from __future__ import annotations

import re
from datetime import UTC, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
_UTC_NAMES = {"utc", "gmt", "z", "zulu", "etc/utc", "etc/gmt", "universal"}


@lru_cache(maxsize=1)
def _iana_names() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


@lru_cache(maxsize=4096)
def normalize_timezone(value: str) -> str:
    """Return the canonical spelling of a time zone, or raise ``ValueError``.

    IANA names keep their canonical case (``europe/moscow`` → ``Europe/Moscow``); offsets become
    ``+HH:MM`` (``+3`` → ``+03:00``, ``UTC+0530`` → ``+05:30``); ``UTC`` stays ``UTC``.
    """
    text = value.strip()
    if not text or len(text) > 64:
        raise ValueError("must be an IANA time zone name (Europe/Moscow) or an offset (+03:00)")
    if text.lower() in _UTC_NAMES:
        return "UTC"
    match = _OFFSET.match(text)
    if match:
        sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
        if hours > 14 or minutes >= 60 or (hours == 14 and minutes):
            raise ValueError("offset must be between -14:00 and +14:00")
        if hours == 0 and minutes == 0:
            return "UTC"
        return f"{sign}{hours:02d}:{minutes:02d}"
    name = _iana_names().get(text.lower())
    if name is None:
        raise ValueError(
            f"unknown time zone {text!r}: use an IANA name (Europe/Moscow) or an offset (+03:00)"
        )
    return name


@lru_cache(maxsize=4096)
def get_tzinfo(name: str) -> tzinfo:
    """The ``tzinfo`` of a normalized time zone name."""
    if name == "UTC":
        return UTC
    if name[0] in "+-":
        sign = 1 if name[0] == "+" else -1
        hours, minutes = int(name[1:3]), int(name[4:6])
        return timezone(sign * timedelta(hours=hours, minutes=minutes), name)
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError as exc:  # pragma: no cover - normalized names always resolve
        raise ValueError(f"unknown time zone {name!r}") from exc
