"""The content of a daily report, read from the database.

The report of day D (a calendar day in NOTIFLOW_REPORT_TIMEZONE, [D 00:00, D+1 00:00)) holds:

- every mailing under way at some instant of D: started before D ended and not finished
  (completed or cancelled) before D began — those that ran, or sat paused, during D; a mailing
  only ever sends while under way, so every message sent or attempted during D is one of theirs;
- for each, its messages that reached a final status during D, by status: sent (accepted by the
  provider during D), failed, expired and cancelled (changed to that status during D); the
  success rate, sent / (sent + failed + expired) — cancelled messages are an operator's decision,
  not a delivery failure; and the five most frequent last errors of its messages that failed or
  expired during D, grouped by text;
- besides, from the mailing's counters at the time of the report: its audience (every message it
  has) and how many are still to send (pending or being sent), and its status;
- the totals over those mailings, and their five most frequent errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.models import MessageStatus
from notiflow.reports import repository
from notiflow.reports.schedule import ReportSchedule
from notiflow.stats import repository as stats

TOP_ERRORS = 5


def success_rate(counts: dict[str, int]) -> float | None:
    """Sent among the messages that reached the end of their delivery (None: none did)."""
    sent = counts.get(MessageStatus.sent.value, 0)
    ended = sent + sum(counts.get(s, 0) for s in repository.NOT_DELIVERED)
    return sent / ended if ended else None


@dataclass(frozen=True, slots=True)
class MailingDay:
    id: int
    text: str
    status: str  # at the time of the report
    outcomes: dict[str, int]  # messages that ended during the day, by final status
    errors: list[tuple[str, int]]
    audience: int  # at the time of the report
    unsent: int  # pending or sending, at the time of the report

    @property
    def ended(self) -> int:
        return sum(self.outcomes.values())

    @property
    def success_rate(self) -> float | None:
        return success_rate(self.outcomes)


@dataclass(frozen=True, slots=True)
class DayReport:
    day: date
    timezone: str
    start: datetime  # UTC
    end: datetime  # UTC
    made_at: datetime  # UTC
    mailings: list[MailingDay] = field(default_factory=list)
    errors: list[tuple[str, int]] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, int]:
        return {
            status: sum(m.outcomes[status] for m in self.mailings) for status in repository.OUTCOMES
        }

    @property
    def ended(self) -> int:
        return sum(self.totals.values())

    @property
    def success_rate(self) -> float | None:
        return success_rate(self.totals)


async def compose(
    session: AsyncSession,
    *,
    day: date,
    schedule: ReportSchedule,
    timezone: str,
    now: datetime,
) -> DayReport:
    start, end = schedule.day_bounds(day)
    rows = await repository.mailings_of_day(session, start=start, end=end)
    ids = [row.id for row in rows]
    outcomes = await repository.outcomes(session, ids, start=start, end=end)
    errors = await repository.top_errors(session, ids, start=start, end=end, limit=TOP_ERRORS)
    counters = await stats.for_mailings(session, ids)
    mailings = []
    for row in rows:
        counts = stats.counts_of(counters.get(row.id))
        mailings.append(
            MailingDay(
                id=row.id,
                text=row.text,
                status=row.status,
                outcomes=outcomes[row.id],
                errors=errors.get(row.id, []),
                audience=counts["total"],
                unsent=counts[MessageStatus.pending.value] + counts[MessageStatus.sending.value],
            )
        )
    return DayReport(
        day=day,
        timezone=timezone,
        start=start,
        end=end,
        made_at=now,
        mailings=mailings,
        errors=await repository.top_errors_overall(
            session, ids, start=start, end=end, limit=TOP_ERRORS
        ),
    )
