"""The report loop of the engine: it sleeps until the next report is due, sends it (or skips it,
too late), and retries a failed attempt with back-off.

Every engine runs it; the claims of ``daily_reports`` make one of them send each day's report.
Once a day's report is known to be sent or skipped, this process does not look at the database
again until the next one is due: a round costs nothing. It looks at the clock at least every
``max_sleep`` seconds, so a clock that jumps (a suspended machine) is noticed.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime, timedelta

from notiflow.core.clock import Clock
from notiflow.delivery.health import Loops, pause
from notiflow.models import DailyReport, ReportStatus
from notiflow.reports.sender import CLAIM_STALE, Outcome, ReportSender

log = logging.getLogger("notiflow.report")

LOOP = "report"
MAX_SLEEP = 60.0


class Reporter:
    def __init__(
        self,
        *,
        sender: ReportSender,
        clock: Clock,
        loops: Loops,
        max_sleep: float = MAX_SLEEP,
    ) -> None:
        self.sender = sender
        self._clock = clock
        self._loops = loops
        self._max_sleep = max_sleep
        self._wake = asyncio.Event()
        self._finished: set[date] = set()  # days whose report is sent or skipped
        # A round may take an SMTP exchange (at most twice NOTIFLOW_SMTP_TIMEOUT): not a stall.
        loops.register(LOOP, period=max(max_sleep, 2 * sender.settings.smtp_timeout))

    def finished(self, day: date) -> bool:
        """Whether this loop knows the report of ``day`` is sent or skipped."""
        return day in self._finished

    def nudge(self) -> None:
        """Look at the clock again now (tests move it)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        log.info(
            "daily report on",
            extra={
                "due_at": self.sender.settings.report_time.strftime("%H:%M"),
                "timezone": self.sender.settings.report_timezone,
                "to": ",".join(self.sender.settings.report_to),
                "smtp": self.sender.mailer.target.redacted() if self.sender.mailer else None,
            },
        )
        while not stop.is_set():
            self._wake.clear()
            try:
                wait = await self.step()
            except Exception as exc:  # retried with back-off, never the end of the loop
                await pause(stop, self._loops.failed(LOOP, exc))
                continue
            self._loops.done(LOOP)
            await pause(stop, wait, wake=self._wake)

    async def step(self) -> float:
        """Send the reports that are due, skip the one that is too late; return how many
        seconds until the next look."""
        schedule = self.sender.schedule
        now = self._clock()
        latest = schedule.latest_due(now)
        wake_at = schedule.due_at(latest + timedelta(days=1))
        if schedule.too_late(latest, now) and latest not in self._finished:
            await self.sender.skip(latest)
            self._finished.add(latest)
        for day in schedule.sendable(now):
            if day in self._finished:
                continue
            result = await self.sender.send(day)
            if result.outcome in (Outcome.sent, Outcome.done):
                self._finished.add(day)
            elif result.outcome is Outcome.failed:
                assert result.retry_at is not None
                wake_at = min(wake_at, result.retry_at)
            else:  # another claimer has it: look again when its retry is due or it goes stale
                wake_at = min(wake_at, _next_look(result.row, now))
        self._finished = {d for d in self._finished if d >= latest - timedelta(days=8)}
        seconds = (wake_at - self._clock()).total_seconds()
        return min(self._max_sleep, max(0.0, seconds))


def _next_look(row: DailyReport | None, now: datetime) -> datetime:
    """When to look again at a report another claimer holds: when its next attempt is due, or
    when its claim goes stale (its claimer died); at least a second from now."""
    later = now + timedelta(seconds=MAX_SLEEP)
    if row is not None and row.status == ReportStatus.retrying.value and row.next_attempt_at:
        later = row.next_attempt_at
    elif row is not None and row.status == ReportStatus.sending.value:
        later = row.claimed_at + CLAIM_STALE
    return max(later, now + timedelta(seconds=1))
