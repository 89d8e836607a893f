"""Send windows: the local hours of each client during which a message may go out.

A window ``start``–``end`` is half-open ``[start, end)`` in the client's own time zone and may
wrap midnight (``22:00``–``06:00``). Times are resolved with ``zoneinfo``, so DST changes are
honoured: on a spring-forward day a window opening inside the skipped hour opens when the clock
jumps; on a fall-back day the first of the two repeated instants counts.
"""

from __future__ import annotations

from dataclasses import dataclass
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


# --- does a window open at all between two instants? ------------------------------------------

_DAY = 86_400_000_000  # microseconds


@dataclass(frozen=True, slots=True)
class Offsets:
    """The UTC offsets a client may have: from ``lowest`` to ``highest``, every ``step``."""

    lowest: timedelta
    highest: timedelta
    step: timedelta


# Every offset a client can have: fixed offsets are accepted from -14:00 to +14:00 in whole
# minutes, and the offset of every IANA zone lies in that range, in whole minutes (since 1972;
# an interval reaching further back is decades long and meets any window anyway).
EVERY_OFFSET = Offsets(
    lowest=timedelta(hours=-14), highest=timedelta(hours=14), step=timedelta(minutes=1)
)


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _time_micros(at: time) -> int:
    return _micros(timedelta(hours=at.hour, minutes=at.minute, seconds=at.second)) + (
        at.microsecond
    )


def _arcs_meet(first: int, first_length: int, second: int, second_length: int) -> bool:
    """Whether two half-open arcs of the day's circle share an instant: one starts in the other."""
    if first_length >= _DAY or second_length >= _DAY:
        return True
    return (second - first) % _DAY < first_length or (first - second) % _DAY < second_length


def opens_between(
    start_time: datetime,
    end_time: datetime,
    *,
    window_start: time,
    window_end: time,
    offsets: Offsets = EVERY_OFFSET,
) -> bool:
    """Whether the window is open at some instant of ``[start_time, end_time)`` for some offset.

    ``False`` means that no client, whatever its time zone, can be sent anything in that
    interval. With every offset (28 hours of them, more than a day) that happens only when the
    interval and the window are both shorter than a minute and miss each other; fewer offsets
    (one zone, whole hours) are for callers who know them.

    Pure arithmetic on the day's circle: at an instant ``t`` and offset ``o`` the local clock
    shows ``t + o`` modulo a day, so the interval seen at offset ``o`` is an arc of its length
    starting at ``start_time + o``; the window is an arc too, and they meet or they do not.
    """
    length = _micros(end_time - start_time)
    if length <= 0:
        return False
    window_from = _time_micros(window_start)
    window_length = (_time_micros(window_end) - window_from) % _DAY or _DAY
    utc_start = start_time.astimezone(UTC)
    time_of_day = _time_micros(utc_start.time())
    step = _micros(offsets.step)
    count = _micros(offsets.highest - offsets.lowest) // step
    first = (time_of_day + _micros(offsets.lowest)) % _DAY
    if length >= step or count == 0:
        # The arcs of neighbouring offsets overlap: together they are one arc.
        return _arcs_meet(first, count * step + length, window_from, window_length)
    return any(
        _arcs_meet((first + k * step) % _DAY, length, window_from, window_length)
        for k in range(count + 1)
    )


def opens_in_zone(
    start_time: datetime, end_time: datetime, *, window_start: time, window_end: time, timezone: str
) -> bool:
    """Whether the window is open at some instant of ``[start_time, end_time)`` in ``timezone``
    (DST included): what the engine will find for a client of that zone."""
    if end_time <= start_time:
        return False
    opening = next_opening(start_time, start=window_start, end=window_end, timezone=timezone)
    return opening is None or opening < end_time
