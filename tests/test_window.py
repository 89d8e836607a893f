"""Send windows in each client's local time: midnight, DST, fixed offsets."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from notiflow.delivery.window import next_opening


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "start", "end", "zone", "expected"),
    [
        # Inside a day window: send now.
        ("2026-06-01 10:00", "09:00", "21:00", "UTC", None),
        ("2026-06-01 09:00", "09:00", "21:00", "UTC", None),  # the start is inside
        ("2026-06-01 21:00", "09:00", "21:00", "UTC", "2026-06-02 09:00"),  # the end is not
        ("2026-06-01 07:00", "09:00", "21:00", "UTC", "2026-06-01 09:00"),
        # Moscow is UTC+3: 05:00 UTC is 08:00 local, the window opens at 06:00 UTC.
        ("2026-06-01 05:00", "09:00", "21:00", "Europe/Moscow", "2026-06-01 06:00"),
        ("2026-06-01 06:30", "09:00", "21:00", "Europe/Moscow", None),
        # Fixed offsets.
        ("2026-06-01 05:00", "09:00", "21:00", "+05:30", None),  # 10:30 local
        ("2026-06-01 20:00", "09:00", "21:00", "-03:00", None),  # 17:00 local
        ("2026-06-01 01:00", "09:00", "21:00", "-03:00", "2026-06-01 12:00"),  # 22:00 local
        # Windows across midnight.
        ("2026-06-01 23:00", "22:00", "06:00", "UTC", None),
        ("2026-06-01 03:00", "22:00", "06:00", "UTC", None),
        ("2026-06-01 06:00", "22:00", "06:00", "UTC", "2026-06-01 22:00"),
        ("2026-06-01 12:00", "22:00", "06:00", "UTC", "2026-06-01 22:00"),
        # Local midnight differs from UTC midnight: 21:30 UTC is 00:30 in Moscow.
        ("2026-06-01 21:30", "22:00", "06:00", "Europe/Moscow", None),
        ("2026-06-01 21:30", "09:00", "21:00", "Europe/Moscow", "2026-06-02 06:00"),
        # DST, spring forward (Berlin, 2026-03-29 02:00 → 03:00 local, 01:00 UTC).
        ("2026-03-28 22:00", "09:00", "21:00", "Europe/Berlin", "2026-03-29 07:00"),  # now UTC+2
        ("2026-03-28 12:00", "09:00", "21:00", "Europe/Berlin", None),
        # A window opening inside the skipped hour opens when the clock jumps.
        ("2026-03-29 00:30", "02:30", "05:00", "Europe/Berlin", "2026-03-29 01:00"),
        # DST, fall back (New York, 2026-11-01 02:00 EDT → 01:00 EST, 06:00 UTC).
        ("2026-11-01 02:00", "09:00", "21:00", "America/New_York", "2026-11-01 14:00"),  # EST now
        ("2026-11-01 05:30", "01:00", "03:00", "America/New_York", None),  # 01:30 EDT
        ("2026-11-01 06:30", "01:00", "03:00", "America/New_York", None),  # 01:30 EST
        ("2026-11-01 04:30", "01:00", "03:00", "America/New_York", "2026-11-01 05:00"),
    ],
)
def test_next_opening(now: str, start: str, end: str, zone: str, expected: str | None) -> None:
    result = next_opening(
        utc(now), start=time.fromisoformat(start), end=time.fromisoformat(end), timezone=zone
    )
    assert result == (utc(expected) if expected else None)


def test_opening_is_always_in_the_future_and_inside() -> None:
    start, end = time(9), time(21)
    for hour in range(0, 48):
        now = utc("2026-03-28 00:00").replace(hour=hour % 24, day=28 + hour // 24)
        opening = next_opening(now, start=start, end=end, timezone="Europe/Berlin")
        if opening is not None:
            assert opening > now
            assert next_opening(opening, start=start, end=end, timezone="Europe/Berlin") is None
