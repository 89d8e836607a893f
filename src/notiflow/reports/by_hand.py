"""``notiflow report send``: one day's report sent (or printed) now, through the same claim as
the engines, so that they do not send it again."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import date

from notiflow.config import Settings
from notiflow.core.clock import Clock, utcnow
from notiflow.db.engine import create_engine, create_sessionmaker
from notiflow.reports import render
from notiflow.reports.sender import Outcome, ReportSender


@dataclass(frozen=True, slots=True)
class Answer:
    """What the command prints, and its exit code: 0 sent (or printed), 1 not sent, 2 a day
    that has not ended."""

    code: int
    out: str = ""
    err: str = ""


async def send(
    settings: Settings,
    *,
    day: date | None,
    dry_run: bool,
    force: bool,
    clock: Clock = utcnow,
) -> Answer:
    db = create_engine(settings)
    try:
        sender = ReportSender(
            settings=settings,
            sessionmaker=create_sessionmaker(db),
            clock=clock,
            worker=f"cli-{socket.gethostname()[:20]}-{os.getpid()}",
        )
        now = clock()
        when = day or sender.schedule.yesterday(now)
        if dry_run:  # any day, the current one so far included
            report = await sender.compose(when)
            text = render.text(report, sender.schedule.tz)
            return Answer(0, out=f"Subject: {render.subject(report)}\n\n{text}")
        if when >= now.astimezone(sender.schedule.tz).date():
            return Answer(
                2,
                err=f"{when} has not ended yet in {settings.report_timezone} "
                "(--dry-run prints the report so far)",
            )
        result = await sender.send(when, by_hand=True, force=force)
    finally:
        await db.dispose()
    if result.outcome is Outcome.sent:
        refused = "".join(
            f"  but refused for {address}: {why}\n"
            for address, why in (result.refused or {}).items()
        )
        return Answer(
            0,
            out=f"the report for {when} was sent to {', '.join(settings.report_to)} "
            f"(Message-ID {result.message_id})\n",
            err=refused,
        )
    if result.outcome is Outcome.failed:
        return Answer(1, err=f"the report for {when} was not sent: {result.error}\n")
    row = result.row
    assert row is not None
    if row.sent_at is not None and row.status == "sent":
        return Answer(
            1,
            err=f"the report for {when} was already sent at {row.sent_at:%Y-%m-%d %H:%M:%S} "
            f"UTC (by {row.claimed_by}); --force sends it again\n",
        )
    return Answer(
        1,
        err=f"the report for {when} is being sent now by {row.claimed_by} (since "
        f"{row.claimed_at:%H:%M:%S} UTC); --force sends it anyway\n",
    )
