"""When each day's report is due, and how long a failed one waits: pure functions of the clock.

The report of day D (a calendar day in the report time zone) is due at NOTIFLOW_REPORT_TIME on
day D + 1, in that time zone; it is sent until NOTIFLOW_REPORT_MAX_LATE after that, and skipped
after.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo


@dataclass(frozen=True, slots=True)
class ReportSchedule:
    tz: tzinfo
    at: time  # the time of day the previous day's report is due
    max_late: timedelta

    def day_bounds(self, day: date) -> tuple[datetime, datetime]:
        """The instants (UTC) when ``day`` begins and ends in the report time zone."""
        start = datetime.combine(day, time(0), tzinfo=self.tz)
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.tz)
        return start.astimezone(UTC), end.astimezone(UTC)

    def due_at(self, day: date) -> datetime:
        """When the report of ``day`` is due (UTC)."""
        return datetime.combine(day + timedelta(days=1), self.at, tzinfo=self.tz).astimezone(UTC)

    def latest_due(self, now: datetime) -> date:
        """The last day whose report is due at ``now``."""
        day = now.astimezone(self.tz).date() - timedelta(days=1)
        while self.due_at(day) > now:
            day -= timedelta(days=1)
        return day

    def sendable(self, now: datetime) -> list[date]:
        """The days whose report is due and not too late at ``now``, oldest first."""
        day = self.latest_due(now)
        days = []
        while now - self.due_at(day) <= self.max_late:
            days.append(day)
            day -= timedelta(days=1)
        return days[::-1]

    def too_late(self, day: date, now: datetime) -> bool:
        return now - self.due_at(day) > self.max_late

    def yesterday(self, now: datetime) -> date:
        return now.astimezone(self.tz).date() - timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before the next attempt of a report whose attempt failed: doubling, bounded."""

    base: timedelta = timedelta(minutes=1)
    max: timedelta = timedelta(minutes=30)

    def delay(self, attempts: int) -> timedelta:
        """After ``attempts`` failed attempts (1 for the first)."""
        factor: int = 2 ** min(max(attempts - 1, 0), 20)
        return min(self.max, self.base * factor)
