"""Send windows: the local hours of each client during which a message may go out.

A window ``start``–``end`` is half-open ``[start, end)`` in the client's own time zone and may
wrap midnight (``22:00``–``06:00``). Times are resolved with ``zoneinfo``, so DST changes are
honoured: on a spring-forward day a window opening inside the skipped hour opens when the clock
jumps; on a fall-back day the first of the two repeated instants counts.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo

from notiflow.core.timezones import get_tzinfo


def _inside(local: time, start: time, end: time) -> bool:
    if start < end:
        return start <= local < end
    return local >= start or local < end  # wraps midnight


def _instant(day: date, at: time, zone: tzinfo) -> datetime:
    """The first UTC instant at which the local clock of ``zone`` shows ``day`` ``at`` or later."""
    naive = datetime.combine(day, at)
    candidate = naive.replace(tzinfo=zone, fold=0)
    utc = candidate.astimezone(UTC)
    # In a spring-forward gap the local time does not exist: round-tripping moves it. The window
    # then opens at the first instant after the gap, which is the transition itself.
    if utc.astimezone(zone).replace(tzinfo=None) != naive:
        later = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
        earlier = utc
        # The transition lies between the two readings of the missing time.
        low, high = min(earlier, later), max(earlier, later)
        while high - low > timedelta(seconds=1):
            mid = low + (high - low) / 2
            if mid.astimezone(zone).replace(tzinfo=None) < naive:
                low = mid
            else:
                high = mid
        return high.replace(microsecond=0)
    return utc


def next_opening(now: datetime, *, start: time, end: time, timezone: str) -> datetime | None:
    """``None`` if ``now`` is inside the window in ``timezone``; else when it next opens (UTC)."""
    zone = get_tzinfo(timezone)
    local = now.astimezone(zone)
    if _inside(local.time().replace(tzinfo=None), start, end):
        return None
    for offset in range(0, 3):
        opening = _instant(local.date() + timedelta(days=offset), start, zone)
        if opening > now:
            return opening
    raise AssertionError("a window opens at least once a day")  # pragma: no cover


def is_open(now: datetime, *, start: time, end: time, timezone: str) -> bool:
    """Whether the window is open at ``now`` in ``timezone``."""
    local = now.astimezone(get_tzinfo(timezone))
    return _inside(local.time().replace(tzinfo=None), start, end)
