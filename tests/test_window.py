"""Send windows in each client's local time: midnight, DST, fixed offsets."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta

import pytest

from notiflow.delivery.window import (
    EVERY_OFFSET,
    Offsets,
    next_opening,
    opens_between,
    opens_in_zone,
)


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


# --- does a window open at all between two instants? ------------------------------------------

HOURLY = Offsets(lowest=timedelta(hours=-12), highest=timedelta(hours=14), step=timedelta(hours=1))
UTC_ONLY = Offsets(lowest=timedelta(0), highest=timedelta(0), step=timedelta(minutes=1))


@pytest.mark.parametrize(
    ("start", "end", "window", "offsets", "expected"),
    [
        # Every offset a client can have (-14:00 to +14:00, whole minutes): 28 hours of local
        # clocks at each instant, so any window of a minute or more opens in some zone.
        ("2030-01-01 10:00", "2030-01-02 10:00", ("09:00", "10:00"), EVERY_OFFSET, True),
        ("2030-01-01 10:00", "2030-01-01 10:30", ("09:00", "10:00"), EVERY_OFFSET, True),  # -01:00
        ("2030-01-01 10:00", "2030-01-01 10:01", ("09:00", "09:01"), EVERY_OFFSET, True),
        (
            "2030-01-01 10:00:30",
            "2030-01-01 10:01:30",
            ("09:00:00", "09:00:01"),
            EVERY_OFFSET,
            True,
        ),
        # Shorter than a minute both: only the seconds can miss each other.
        (
            "2030-01-01 10:00:30",
            "2030-01-01 10:00:50",
            ("09:00:00", "09:00:20"),
            EVERY_OFFSET,
            False,
        ),
        (
            "2030-01-01 10:00:20",
            "2030-01-01 10:00:59",
            ("09:00:00", "09:00:20"),
            EVERY_OFFSET,
            False,
        ),
        (
            "2030-01-01 10:00:15",
            "2030-01-01 10:00:35",
            ("09:00:00", "09:00:20"),
            EVERY_OFFSET,
            True,
        ),
        (
            "2030-01-01 10:00:50",
            "2030-01-01 10:01:05",
            ("09:00:00", "09:00:20"),
            EVERY_OFFSET,
            True,
        ),
        (
            "2030-01-01 10:00:20",
            "2030-01-01 10:00:40",
            ("23:59:50", "00:00:10"),
            EVERY_OFFSET,
            False,
        ),
        (
            "2030-01-01 10:00:05",
            "2030-01-01 10:00:40",
            ("23:59:50", "00:00:10"),
            EVERY_OFFSET,
            True,
        ),
        (
            "2030-01-01 10:00:20.5",
            "2030-01-01 10:00:59.9",
            ("09:00", "09:00:20"),
            EVERY_OFFSET,
            False,
        ),
        (
            "2030-01-01 10:00:19.9",
            "2030-01-01 10:00:59.9",
            ("09:00", "09:00:20"),
            EVERY_OFFSET,
            True,
        ),
        ("2030-01-01 10:00", "2030-01-01 10:00", ("09:00", "21:00"), EVERY_OFFSET, False),  # empty
        # One zone, UTC.
        ("2030-01-01 10:00", "2030-01-01 10:30", ("09:00", "10:00"), UTC_ONLY, False),
        ("2030-01-01 09:59", "2030-01-01 10:30", ("09:00", "10:00"), UTC_ONLY, True),
        ("2030-01-01 10:00", "2030-01-02 09:00", ("09:00", "10:00"), UTC_ONLY, False),
        ("2030-01-01 10:00", "2030-01-02 09:00:01", ("09:00", "10:00"), UTC_ONLY, True),
        ("2030-01-01 07:00", "2030-01-01 21:59", ("22:00", "06:00"), UTC_ONLY, False),
        ("2030-01-01 07:00", "2030-01-01 22:00:01", ("22:00", "06:00"), UTC_ONLY, True),
        ("2030-01-01 05:59", "2030-01-01 21:59", ("22:00", "06:00"), UTC_ONLY, True),
        # Whole-hour zones only: a short window and a short interval can miss in all of them.
        ("2030-01-01 10:30", "2030-01-01 11:00", ("09:00", "09:20"), HOURLY, False),
        ("2030-01-01 10:10", "2030-01-01 10:40", ("09:00", "09:20"), HOURLY, True),
        ("2030-01-01 10:30", "2030-01-01 11:00", ("09:00", "10:00"), HOURLY, True),
        ("2030-01-01 10:30", "2030-01-01 11:31", ("09:00", "09:01"), HOURLY, True),
    ],
)
def test_opens_between(
    start: str, end: str, window: tuple[str, str], offsets: Offsets, expected: bool
) -> None:
    assert (
        opens_between(
            utc(start),
            utc(end),
            window_start=time.fromisoformat(window[0]),
            window_end=time.fromisoformat(window[1]),
            offsets=offsets,
        )
        is expected
    )


def test_opens_between_agrees_with_trying_every_minute() -> None:
    """Against brute force: every minute of the interval at every offset of a small set."""
    offsets = Offsets(
        lowest=timedelta(hours=-1), highest=timedelta(hours=1), step=timedelta(minutes=15)
    )
    moments = range(-4, 5)
    rng = random.Random(7)
    for _ in range(400):
        start = utc("2030-01-01 00:00") + timedelta(minutes=rng.randrange(0, 2880))
        end = start + timedelta(minutes=rng.randrange(0, 240))
        opens, closes = rng.sample(range(0, 1440), 2)
        window = (time(opens // 60, opens % 60), time(closes // 60, closes % 60))
        brute = any(
            next_opening(
                moment,
                start=window[0],
                end=window[1],
                timezone=f"{'+' if k >= 0 else '-'}{abs(k) * 15 // 60:02d}:{abs(k) * 15 % 60:02d}",
            )
            is None
            for minute in range(int((end - start).total_seconds()) // 60)
            for moment in [start + timedelta(minutes=minute)]
            for k in moments
        )
        found = opens_between(
            start, end, window_start=window[0], window_end=window[1], offsets=offsets
        )
        assert found is brute, (start, end, window)


@pytest.mark.parametrize(
    ("start", "end", "window", "zone", "expected"),
    [
        ("2030-01-01 10:00", "2030-01-01 10:30", ("09:00", "10:00"), "UTC", False),
        ("2030-01-01 06:00", "2030-01-01 06:30", ("09:00", "10:00"), "Europe/Moscow", True),
        ("2030-01-01 05:00", "2030-01-01 06:00", ("09:00", "10:00"), "Europe/Moscow", False),
        ("2030-01-01 05:00", "2030-01-01 06:00:01", ("09:00", "10:00"), "Europe/Moscow", True),
        # Berlin moves to UTC+2 on 2026-03-29: 09:00 local is 07:00 UTC that day.
        ("2026-03-29 07:00", "2026-03-29 07:30", ("09:00", "10:00"), "Europe/Berlin", True),
        ("2026-03-28 07:00", "2026-03-28 07:30", ("09:00", "10:00"), "Europe/Berlin", False),
    ],
)
def test_opens_in_zone(
    start: str, end: str, window: tuple[str, str], zone: str, expected: bool
) -> None:
    assert (
        opens_in_zone(
            utc(start),
            utc(end),
            window_start=time.fromisoformat(window[0]),
            window_end=time.fromisoformat(window[1]),
            timezone=zone,
        )
        is expected
    )
