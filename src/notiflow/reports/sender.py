"""One attempt at the report of one day: claim it, compose it, hand it to the SMTP server, record
the outcome. Used by the engine's report loop and by ``notiflow report send``.

Exactly one e-mail per day, however many engines run: the ``daily_reports`` row of the day is
claimed before anything is sent (one claimer wins), and marked sent once the SMTP server accepted
the message. A claimer that dies mid-attempt leaves the row ``sending``; after ``CLAIM_STALE``
another engine takes it over. The one way to two e-mails: a claimer whose server accepted the
message but that could not record it (the database gone for longer than it keeps trying).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notiflow.config import Settings
from notiflow.core.clock import Clock
from notiflow.core.timezones import get_tzinfo
from notiflow.db.session import transaction
from notiflow.delivery.health import describe
from notiflow.models import DailyReport, ReportStatus
from notiflow.reports import render, repository, service
from notiflow.reports.mailer import Mailer, MailError
from notiflow.reports.schedule import Backoff, ReportSchedule
from notiflow.reports.service import DayReport

log = logging.getLogger("notiflow.report")

# A claim this old without an outcome is its claimer's that died: longer than an attempt takes
# (composing, and the SMTP exchange, bounded by twice NOTIFLOW_SMTP_TIMEOUT ≤ 240 s).
CLAIM_STALE = timedelta(minutes=5)
RECORD_TRIES = 5  # tries to record that the server took the message (1 + 2 + 4 + 8 s between)


class Outcome(StrEnum):
    sent = "sent"  # this attempt: the server accepted it
    failed = "failed"  # this attempt failed; the next is due at retry_at
    busy = "busy"  # another claimer holds it now, or its next attempt is not due yet
    done = "done"  # it was sent, or skipped, before


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    row: DailyReport | None = None  # for busy and done: the row as found
    attempt: int = 0
    error: str | None = None
    retry_at: datetime | None = None
    message_id: str | None = None
    refused: dict[str, str] | None = None


class ReportSender:
    def __init__(
        self,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        worker: str,
        mailer: Mailer | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.settings = settings
        self.schedule = ReportSchedule(
            tz=get_tzinfo(settings.report_timezone),
            at=settings.report_time,
            max_late=settings.report_max_late,
        )
        self.worker = worker
        self._sessionmaker = sessionmaker
        self._clock = clock
        target = settings.smtp
        self.mailer = mailer or (
            Mailer(target, timeout=settings.smtp_timeout) if target is not None else None
        )
        self.backoff = backoff or Backoff()

    async def compose(self, day: date) -> DayReport:
        async with transaction(self._sessionmaker) as session:
            return await service.compose(
                session,
                day=day,
                schedule=self.schedule,
                timezone=self.settings.report_timezone,
                now=self._clock(),
            )

    async def row(self, day: date) -> DailyReport | None:
        async with transaction(self._sessionmaker) as session:
            return await repository.get(session, day)

    async def send(self, day: date, *, by_hand: bool = False, force: bool = False) -> Result:
        """One attempt at the report of ``day``, if this process can claim it."""
        if self.mailer is None:
            raise RuntimeError("NOTIFLOW_SMTP_URL is not set")
        now = self._clock()
        async with transaction(self._sessionmaker) as session:
            attempt = await repository.claim(
                session,
                day=day,
                worker=self.worker,
                now=now,
                stale_before=now - CLAIM_STALE,
                by_hand=by_hand,
                force=force,
            )
            row = None if attempt is not None else await repository.get(session, day)
        if attempt is None:
            assert row is not None
            finished = row.status in (ReportStatus.sent.value, ReportStatus.skipped.value)
            return Result(Outcome.done if finished else Outcome.busy, row=row)
        recipients = self.settings.report_to
        try:
            report = await self.compose(day)
            message = render.email(
                report,
                self.schedule.tz,
                sender=self.settings.report_from,
                recipients=recipients,
                now=self._clock(),
            )
            refused = await self.mailer.send(
                message, sender=self.settings.report_from, recipients=recipients
            )
        except Exception as exc:
            error = str(exc) if isinstance(exc, MailError) else describe(exc)
            retry_at = self._clock() + self.backoff.delay(attempt)
            async with transaction(self._sessionmaker) as session:
                await repository.mark_failed(
                    session, day=day, worker=self.worker, error=error, retry_at=retry_at
                )
            log.error(
                "daily report not sent",
                extra={
                    "report_date": day.isoformat(),
                    "attempt": attempt,
                    "smtp": self.mailer.target.redacted(),
                    "error": error,
                    "retry_at": f"{retry_at:%Y-%m-%dT%H:%M:%SZ}",
                },
            )
            return Result(Outcome.failed, attempt=attempt, error=error, retry_at=retry_at)
        message_id = str(message["Message-ID"])
        await self._record_sent(day, message_id)
        if refused:
            log.warning(
                "daily report refused for some recipients",
                extra={
                    "report_date": day.isoformat(),
                    "refused": "; ".join(f"{address}: {why}" for address, why in refused.items()),
                },
            )
        log.info(
            "daily report sent",
            extra={
                "report_date": day.isoformat(),
                "to": ",".join(a for a in recipients if a not in refused),
                "email_message_id": message_id,
                "attempt": attempt,
                "mailings": len(report.mailings),
            },
        )
        return Result(Outcome.sent, attempt=attempt, message_id=message_id, refused=refused)

    async def _record_sent(self, day: date, message_id: str) -> None:
        for tried in range(RECORD_TRIES):
            try:
                async with transaction(self._sessionmaker) as session:
                    await repository.mark_sent(
                        session, day=day, now=self._clock(), message_id=message_id
                    )
                return
            except Exception as exc:
                if tried == RECORD_TRIES - 1:
                    log.error(
                        "daily report sent but not recorded: another engine may send it again",
                        extra={
                            "report_date": day.isoformat(),
                            "email_message_id": message_id,
                            "error": describe(exc),
                            "minutes": CLAIM_STALE.seconds // 60,
                        },
                    )
                    raise
                await asyncio.sleep(2.0**tried)

    async def skip(self, day: date) -> bool:
        """Mark the report of ``day`` skipped (too late) unless it was sent or is being sent;
        return whether this call did, and then say so with a warning."""
        now = self._clock()
        async with transaction(self._sessionmaker) as session:
            skipped = await repository.skip(
                session, day=day, worker=self.worker, now=now, stale_before=now - CLAIM_STALE
            )
        if skipped:
            log.warning(
                "daily report skipped: more than NOTIFLOW_REPORT_MAX_LATE late "
                "(`notiflow report send --date` sends it)",
                extra={
                    "report_date": day.isoformat(),
                    "due_at": f"{self.schedule.due_at(day):%Y-%m-%dT%H:%M:%SZ}",
                    "max_late": str(self.schedule.max_late),
                },
            )
        return skipped
