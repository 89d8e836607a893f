"""The daily report against a real SMTP server (aiosmtpd on 127.0.0.1), on SQLite and
PostgreSQL, with an injected clock for the day boundaries and the due times."""

from __future__ import annotations

import asyncio
import html
import logging
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from notiflow.config import Settings
from notiflow.db.session import transaction
from notiflow.delivery.engine import Engine
from notiflow.messages.repository import NewMessage
from notiflow.models import DailyReport, Message, MessageStatus
from notiflow.reports.loop import Reporter
from notiflow.reports.mailer import Mailer, MailError
from notiflow.reports.schedule import Backoff
from notiflow.reports.sender import CLAIM_STALE, Outcome, ReportSender
from notiflow.reports.smtp_url import parse_smtp_url
from tests.conftest import TOKEN, FakeClock
from tests.delivery_support import wait_until
from tests.helpers import make_mailing, seed_messages
from tests.smtp_support import Credentials, Inbox, self_signed, smtp_server, start_smtp

# The day of the reports below, in a time zone half an hour off the hour: in UTC it is
# [2026-12-04 18:30, 2026-12-05 18:30).
TZ = "Asia/Kolkata"
DAY = date(2026, 12, 5)
DAY_START = datetime(2026, 12, 4, 18, 30, tzinfo=UTC)
DAY_END = datetime(2026, 12, 5, 18, 30, tzinfo=UTC)
DUE = datetime(2026, 12, 6, 1, 30, tzinfo=UTC)  # 07:00 in Kolkata, the day after
RECIPIENTS = ["ops@example.com", "Night Shift <night@example.com>"]
SENDER = "Notiflow <notiflow@example.com>"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 12, 3, 9, 0, tzinfo=UTC))


def report_settings(settings: Settings, smtp_url: str, **extra: Any) -> Settings:
    return Settings(
        database_url=settings.database_url,
        api_tokens=[TOKEN],
        report_to=RECIPIENTS,
        report_from=SENDER,
        report_timezone=TZ,
        report_time="07:00",
        smtp_url=smtp_url,
        _env_file=None,
        **extra,
    )


def report_sender(
    app: Any, settings: Settings, clock: FakeClock, port: int, worker: str = "w1", **extra: Any
) -> ReportSender:
    return ReportSender(
        settings=report_settings(settings, f"smtp://127.0.0.1:{port}", **extra),
        sessionmaker=app.state.sessionmaker,
        clock=clock,
        worker=worker,
        backoff=Backoff(base=timedelta(seconds=30), max=timedelta(minutes=5)),
    )


async def report_row(app: Any, day: date = DAY) -> DailyReport | None:
    async with transaction(app.state.sessionmaker) as session:
        return await session.scalar(select(DailyReport).where(DailyReport.report_date == day))


async def all_rows(app: Any) -> list[DailyReport]:
    async with transaction(app.state.sessionmaker) as session:
        return list(await session.scalars(select(DailyReport)))


# --- the content ----------------------------------------------------------------------------


class Seeder:
    """Mailings started and cancelled through the API, and messages written through the
    repository, each at a moment the clock is set to."""

    def __init__(self, app: Any, api: httpx.AsyncClient, clock: FakeClock) -> None:
        self.app, self.api, self.clock = app, api, clock
        self.client_id = 0

    async def started(self, at: datetime, text: str = "hello") -> int:
        self.clock.now = at - timedelta(minutes=1)
        mailing = await make_mailing(
            self.api,
            self.clock.now,
            start_in=timedelta(hours=1),
            duration=timedelta(days=9),
            text=text,
        )
        self.clock.now = at
        response = await self.api.post(f"/api/v1/mailings/{mailing['id']}/start")
        assert response.status_code == 200, response.text
        return int(mailing["id"])

    async def cancel(self, mailing_id: int, at: datetime) -> None:
        self.clock.now = at
        response = await self.api.post(f"/api/v1/mailings/{mailing_id}/cancel")
        assert response.status_code == 200, response.text

    async def messages(
        self,
        mailing_id: int,
        at: datetime,
        status: MessageStatus,
        count: int = 1,
        *,
        error: str | None = None,
    ) -> None:
        rows = []
        for _ in range(count):
            self.client_id += 1
            rows.append(
                NewMessage(
                    client_id=self.client_id,
                    status=status,
                    attempts=0 if status is MessageStatus.pending else 1,
                    sent_at=at if status is MessageStatus.sent else None,
                    last_error=error,
                )
            )
        await seed_messages(self.app, mailing_id, rows, now=at)


def html_row(page: str, row_id: str) -> list[str]:
    """The cells of the HTML table row with this id, as text."""
    match = re.search(rf'<tr id="{row_id}">(.*?)</tr>', page, re.S)
    assert match is not None, row_id
    cells = re.findall(r"<td[^>]*>(.*?)</td>", match.group(1), re.S)
    return [html.unescape(re.sub(r"<br>", "\n", cell)) for cell in cells]


async def test_content_is_the_days_statistics(
    app: Any, api: httpx.AsyncClient, settings: Settings, clock: FakeClock
) -> None:
    seed = Seeder(app, api, clock)
    markup = 'Sale <b>-20 %</b> & "more"\nsee you'
    # A: started before the day, still running at the time of the report.
    a = await seed.started(datetime(2026, 12, 4, 10, 0, tzinfo=UTC), text=markup)
    await seed.messages(a, DAY_START - timedelta(seconds=1), MessageStatus.sent)  # the day before
    await seed.messages(a, DAY_START, MessageStatus.sent)  # the first instant of the day
    await seed.messages(a, datetime(2026, 12, 5, 12, 0, tzinfo=UTC), MessageStatus.sent, 3)
    await seed.messages(
        a, DAY_END - timedelta(minutes=1), MessageStatus.failed, 2, error="HTTP 400: <bad phone>"
    )
    await seed.messages(
        a, datetime(2026, 12, 5, 13, 0, tzinfo=UTC), MessageStatus.failed, error="HTTP 410"
    )
    await seed.messages(a, DAY_END, MessageStatus.expired, error="too late")  # the day after
    await seed.messages(a, DAY_START, MessageStatus.pending, 2)
    # B: started and cancelled during the day.
    b = await seed.started(datetime(2026, 12, 5, 3, 0, tzinfo=UTC), text="flash sale")
    await seed.messages(b, datetime(2026, 12, 5, 3, 30, tzinfo=UTC), MessageStatus.sent)
    await seed.messages(
        b,
        datetime(2026, 12, 5, 3, 45, tzinfo=UTC),
        MessageStatus.expired,
        error="end_time passed before sending",
    )
    await seed.messages(b, datetime(2026, 12, 5, 3, 50, tzinfo=UTC), MessageStatus.pending, 4)
    await seed.cancel(b, datetime(2026, 12, 5, 4, 0, tzinfo=UTC))  # its 4 pending: cancelled
    # C: cancelled before the day began; D: started after it ended; E: never started.
    c = await seed.started(datetime(2026, 12, 4, 1, 0, tzinfo=UTC), text="old news")
    await seed.messages(c, datetime(2026, 12, 4, 2, 0, tzinfo=UTC), MessageStatus.sent)
    await seed.cancel(c, DAY_START - timedelta(minutes=1))
    d = await seed.started(DAY_END + timedelta(minutes=5), text="tomorrow")
    await seed.messages(d, DAY_END + timedelta(minutes=6), MessageStatus.sent)
    clock.now = DAY_END
    await make_mailing(api, clock.now, text="never started")

    async with smtp_server() as smtp:
        clock.now = DUE
        sender = report_sender(app, settings, clock, smtp.port)
        result = await sender.send(DAY)
        assert result.outcome is Outcome.sent
        assert len(smtp.inbox.messages) == 1
        mail = smtp.inbox.messages[0]

    assert mail.mail_from == "notiflow@example.com"
    assert mail.rcpt_tos == ["ops@example.com", "night@example.com"]
    message = mail.message
    assert message.get_content_type() == "multipart/alternative"
    assert message["To"] == "ops@example.com, Night Shift <night@example.com>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].strip() == result.message_id
    assert message["Subject"] == "Notiflow report 2026-12-05: 2 mailings, 5 sent (55.6 %)"
    text = mail.part("plain")
    assert "Notiflow daily report: Saturday 5 December 2026 (Asia/Kolkata)" in text
    assert "The day from 2026-12-04 18:30 to 2026-12-05 18:30 UTC." in text
    assert "2 mailings ran; 13 messages ended: 5 sent, 3 failed, 1 expired, 4 cancelled." in text
    assert "Success rate: 55.6 %" in text
    top = text.split("Top errors:\n")[1].split("\n\n")[0].splitlines()
    assert [line.split(None, 1) for line in top] == [
        ["2", "HTTP 400: <bad phone>"],
        ["1", "HTTP 410"],
        ["1", "end_time passed before sending"],
    ]
    block_a = text.split(f"Mailing #{a} (running): ")[1].split("\n\n")[0]
    assert block_a.splitlines()[0] == 'Sale <b>-20 %</b> & "more" see you'
    assert "ended that day: 4 sent, 3 failed, 0 expired, 0 cancelled" in block_a
    assert "success rate: 57.1 %" in block_a
    assert "audience: 11 messages, 2 still to send" in block_a
    block_b = text.split(f"Mailing #{b} (cancelled): flash sale")[1].split("\n\n")[0]
    assert "ended that day: 1 sent, 0 failed, 1 expired, 4 cancelled" in block_b
    assert "success rate: 50.0 %" in block_b
    assert "audience: 6 messages, 0 still to send" in block_b
    for absent in (c, d):
        assert f"Mailing #{absent} " not in text
    assert "never started" not in text
    assert "old news" not in text

    page = mail.part("html")
    assert "<b>-20 %</b>" not in page
    assert "<bad phone>" not in page
    assert "&lt;b&gt;-20 %&lt;/b&gt; &amp; &#34;more&#34;" in page
    assert html_row(page, "totals") == ["2", "13", "5", "3", "1", "4", "55.6 %"]
    assert html_row(page, f"mailing-{a}") == [
        f"#{a}",
        'Sale <b>-20 %</b> & "more" see you',
        "running",
        "4",
        "3",
        "0",
        "0",
        "57.1 %",
        "11",
        "2",
        "2 × HTTP 400: <bad phone>\n1 × HTTP 410",
    ]
    assert html_row(page, f"mailing-{b}")[2:10] == [
        "cancelled",
        "1",
        "0",
        "1",
        "4",
        "50.0 %",
        "6",
        "0",
    ]
    assert f'id="mailing-{c}"' not in page
    assert f'id="mailing-{d}"' not in page


async def test_a_day_without_mailings_says_so(
    app: Any, settings: Settings, clock: FakeClock
) -> None:
    clock.now = DUE
    async with smtp_server() as smtp:
        sender = report_sender(app, settings, clock, smtp.port)
        assert (await sender.send(DAY)).outcome is Outcome.sent
        mail = smtp.inbox.messages[0]
    assert "No mailing ran on this day." in mail.part("plain")
    assert "No mailing ran on this day." in mail.part("html")
    assert mail.message["Subject"] == "Notiflow report 2026-12-05: 0 mailings, 0 sent (n/a)"


async def test_deleting_a_client_later_leaves_its_messages_on_their_day(
    app: Any, api: httpx.AsyncClient, clock: FakeClock
) -> None:
    """A message counts on the day of its outcome (its updated_at): deleting its client a day
    later unlinks it but must not move it into that later day's report."""
    seed = Seeder(app, api, clock)
    mailing_id = await seed.started(DAY_START - timedelta(hours=1))
    created = await api.post("/api/v1/clients", json={"phone": "79005550001"})
    assert created.status_code == 201, created.text
    client_id = created.json()["id"]
    outcome_at = DAY_START + timedelta(hours=2)
    row = NewMessage(
        client_id=client_id, status=MessageStatus.failed, attempts=1, last_error="HTTP 400"
    )
    await seed_messages(app, mailing_id, [row], now=outcome_at)
    clock.now = DUE + timedelta(days=1)
    assert (await api.delete(f"/api/v1/clients/{client_id}")).status_code == 204
    async with transaction(app.state.sessionmaker) as session:
        message = (
            await session.scalars(select(Message).where(Message.mailing_id == mailing_id))
        ).one()
    assert message.client_id is None
    assert message.updated_at == outcome_at


# --- once a day, however many engines ---------------------------------------------------------


async def test_three_engines_racing_deliver_one_email(
    app: Any, settings: Settings, clock: FakeClock
) -> None:
    clock.now = DUE + timedelta(minutes=3)
    async with smtp_server() as smtp:
        report = report_settings(settings, f"smtp://127.0.0.1:{smtp.port}")
        engines = [
            Engine(
                settings=report.model_copy(update={"engine_poll_seconds": 0.2}),
                sessionmaker=app.state.sessionmaker,
                provider_url="http://127.0.0.1:9/v1/send",  # never called: no mailing
                provider_token="unused",
                clock=clock,
            )
            for _ in range(3)
        ]
        try:
            await asyncio.gather(*(engine.start() for engine in engines))
            await wait_until(lambda: len(smtp.inbox.messages) >= 1)
            row = await report_row(app)
            await wait_until_sent(app)
            # The losers look again (a claim held by a live engine is not theirs to take).
            reporters = [engine.reporter for engine in engines]
            assert all(reporter is not None for reporter in reporters)
            for reporter in reporters:
                reporter.nudge()  # type: ignore[union-attr]
            await wait_until(
                lambda: all(r.finished(DAY) for r in reporters)  # type: ignore[union-attr]
            )
            assert all(not engine.problems() for engine in engines)
        finally:
            await asyncio.gather(*(engine.stop() for engine in engines))
        assert len(smtp.inbox.messages) == 1
    row = await report_row(app)
    assert row is not None
    assert row.status == "sent"
    assert row.attempts == 1
    assert row.claimed_by in {engine.worker for engine in engines}
    assert row.sent_at == clock.now
    assert row.message_id == smtp.inbox.messages[0].message["Message-ID"].strip()
    assert [r.report_date for r in await all_rows(app)] == [DAY]


async def wait_until_sent(app: Any) -> None:
    for _ in range(200):
        row = await report_row(app)
        if row is not None and row.status == "sent":
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the report was never marked sent")


async def test_claimers_in_separate_tasks_send_once(
    app: Any, settings: Settings, clock: FakeClock
) -> None:
    """Twelve claimers at once: one inserts the row and sends; the others find it taken."""
    clock.now = DUE
    async with smtp_server() as smtp:
        senders = [report_sender(app, settings, clock, smtp.port, f"w{i}") for i in range(12)]
        results = await asyncio.gather(*(sender.send(DAY) for sender in senders))
        outcomes = [result.outcome for result in results]
        assert outcomes.count(Outcome.sent) == 1
        assert set(outcomes) <= {Outcome.sent, Outcome.busy, Outcome.done}
        assert len(smtp.inbox.messages) == 1
        # Later claims find it sent.
        assert (await senders[0].send(DAY)).outcome is Outcome.done


async def test_a_dead_claimers_report_is_taken_over(
    app: Any, settings: Settings, clock: FakeClock
) -> None:
    """A claim that stays ``sending`` (its claimer died) is taken over once it is stale."""
    from notiflow.reports import repository

    clock.now = DUE
    async with transaction(app.state.sessionmaker) as session:
        assert (
            await repository.claim(
                session, day=DAY, worker="dead", now=clock.now, stale_before=clock.now
            )
            == 1
        )
    async with smtp_server() as smtp:
        sender = report_sender(app, settings, clock, smtp.port, "alive")
        busy = await sender.send(DAY)
        assert busy.outcome is Outcome.busy
        assert busy.row is not None
        assert busy.row.claimed_by == "dead"
        clock.advance(seconds=CLAIM_STALE.total_seconds() - 1)
        assert (await sender.send(DAY)).outcome is Outcome.busy
        clock.advance(seconds=2)
        taken = await sender.send(DAY)
        assert taken.outcome is Outcome.sent
        assert taken.attempt == 2
        assert len(smtp.inbox.messages) == 1
    row = await report_row(app)
    assert row is not None
    assert (row.status, row.claimed_by) == ("sent", "alive")


# --- a failed attempt is retried --------------------------------------------------------------


async def test_a_refused_attempt_is_retried_then_delivered_once(
    app: Any, settings: Settings, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="notiflow.report")
    clock.now = DUE + timedelta(seconds=5)
    async with smtp_server(Inbox(refuse=1)) as smtp:
        sender = report_sender(app, settings, clock, smtp.port)
        reporter = Reporter(sender=sender, clock=clock, loops=_loops())
        wait = await reporter.step()
        assert smtp.inbox.refused == 1
        assert smtp.inbox.messages == []
        row = await report_row(app)
        assert row is not None
        assert (row.status, row.attempts) == ("retrying", 1)
        assert row.last_error == "SMTP 451: 4.3.0 Mailbox busy, try again later"
        assert row.next_attempt_at == clock.now + timedelta(seconds=30)
        assert wait == pytest.approx(30)
        assert any(
            r.getMessage() == "daily report not sent"
            and (r.__dict__["report_date"], r.__dict__["attempt"]) == ("2026-12-05", 1)
            for r in caplog.records
        )
        # Not before its time: another engine finds it waiting.
        other = report_sender(app, settings, clock, smtp.port, "w2")
        assert (await other.send(DAY)).outcome is Outcome.busy
        clock.advance(seconds=30)
        await reporter.step()
        assert len(smtp.inbox.messages) == 1
        row = await report_row(app)
        assert row is not None
        assert (row.status, row.attempts, row.sent_at) == ("sent", 2, clock.now)
        # Nothing more, ever, for that day.
        clock.advance(hours=1)
        await reporter.step()
        assert (await other.send(DAY)).outcome is Outcome.done
        assert len(smtp.inbox.messages) == 1


async def test_a_server_that_is_down_then_up_gets_the_report_once(
    app: Any, settings: Settings, clock: FakeClock
) -> None:
    clock.now = DUE
    inbox = Inbox()
    smtp = await start_smtp(inbox)
    port = smtp.port
    await smtp.stop()  # nobody listens there now
    sender = report_sender(app, settings, clock, port)
    reporter = Reporter(sender=sender, clock=clock, loops=_loops())
    await reporter.step()
    row = await report_row(app)
    assert row is not None
    assert row.status == "retrying"
    assert row.last_error is not None
    assert "Connect call failed" in row.last_error
    clock.advance(seconds=30)
    await reporter.step()  # still down: the second delay is twice the first
    row = await report_row(app)
    assert row is not None
    assert (row.attempts, row.next_attempt_at) == (
        2,
        clock.now + timedelta(seconds=60),
    )
    smtp = await start_smtp(inbox, port=port)
    try:
        clock.advance(seconds=60)
        await reporter.step()
        assert len(inbox.messages) == 1
    finally:
        await smtp.stop()
    row = await report_row(app)
    assert row is not None
    assert (row.status, row.attempts) == ("sent", 3)


def _loops() -> Any:
    from notiflow.delivery.health import Loops

    return Loops(stall_seconds=60)


# --- too late: skipped, with a warning --------------------------------------------------------


async def test_a_report_too_late_is_skipped_with_a_warning(
    app: Any, settings: Settings, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="notiflow.report")
    async with smtp_server() as smtp:
        clock.now = DUE + timedelta(hours=6, seconds=1)  # the default NOTIFLOW_REPORT_MAX_LATE
        first = Reporter(
            sender=report_sender(app, settings, clock, smtp.port), clock=clock, loops=_loops()
        )
        second = Reporter(
            sender=report_sender(app, settings, clock, smtp.port, "w2"),
            clock=clock,
            loops=_loops(),
        )
        wait = await first.step()
        await second.step()
        await first.step()
        assert smtp.inbox.messages == []
        row = await report_row(app)
        assert row is not None
        assert (row.status, row.skipped_at, row.attempts) == ("skipped", clock.now, 0)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1  # one engine says so, once
        assert warnings[0].getMessage().startswith("daily report skipped")
        assert warnings[0].__dict__["report_date"] == "2026-12-05"
        assert warnings[0].__dict__["max_late"] == "6:00:00"
        # It sleeps at most a minute at a time until the next one is due.
        assert wait == 60
        # The next day's report goes out on time.
        clock.now = DUE + timedelta(days=1)
        await first.step()
        assert len(smtp.inbox.messages) == 1
        assert "2026-12-06" in smtp.inbox.messages[0].message["Subject"]
        # A skipped day may still be sent by hand.
        by_hand = await first.sender.send(DAY, by_hand=True)
        assert by_hand.outcome is Outcome.sent
        assert len(smtp.inbox.messages) == 2


async def test_a_report_still_failing_when_too_late_is_skipped(
    app: Any, settings: Settings, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="notiflow.report")
    async with smtp_server(Inbox(refuse=100)) as smtp:
        sender = report_sender(app, settings, clock, smtp.port)
        sender.backoff = Backoff(base=timedelta(minutes=30))
        reporter = Reporter(sender=sender, clock=clock, loops=_loops())
        clock.now = DUE + timedelta(hours=5, minutes=50)
        await reporter.step()
        row = await report_row(app)
        assert row is not None
        assert (row.status, row.attempts) == ("retrying", 1)
        assert row.next_attempt_at == DUE + timedelta(hours=6, minutes=20)
        clock.now = DUE + timedelta(hours=6, minutes=1)  # too late, before its next attempt
        await reporter.step()
        row = await report_row(app)
        assert row is not None
        assert (row.status, row.skipped_at) == ("skipped", clock.now)
        assert row.last_error == "SMTP 451: 4.3.0 Mailbox busy, try again later"
        clock.now = DUE + timedelta(hours=6, minutes=30)
        await reporter.step()
        assert smtp.inbox.refused == 1
    assert any(
        r.getMessage().startswith("daily report skipped")
        and r.__dict__["report_date"] == "2026-12-05"
        for r in caplog.records
    )


async def test_within_max_late_it_is_sent_and_before_due_it_waits(
    app: Any, settings: Settings, clock: FakeClock
) -> None:
    async with smtp_server() as smtp:
        sender = report_sender(app, settings, clock, smtp.port)
        reporter = Reporter(sender=sender, clock=clock, loops=_loops(), max_sleep=10**6)
        clock.now = DUE - timedelta(seconds=90)
        assert await reporter.step() == 90  # sleeps until it is due
        # Meanwhile the report of the day before, due 24 hours ago, is too late: skipped.
        rows = await all_rows(app)
        assert [(r.report_date, r.status) for r in rows] == [(DAY - timedelta(days=1), "skipped")]
        assert smtp.inbox.messages == []
        clock.now = DUE + timedelta(hours=5, minutes=59)
        await reporter.step()
        assert len(smtp.inbox.messages) == 1
        assert await reporter.step() == pytest.approx(
            (DUE + timedelta(days=1) - clock.now).total_seconds()
        )


# --- SMTP: STARTTLS and login, implicit TLS, passwords kept out of sight ----------------------


async def test_starttls_and_login(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    app: Any,
    settings: Settings,
    clock: FakeClock,
) -> None:
    caplog.set_level(logging.DEBUG)
    server_tls, client_tls = self_signed(tmp_path)
    credentials = Credentials("reports@example.com", "s3cret/p@ss")
    async with smtp_server(starttls=server_tls, credentials=credentials) as smtp:
        url = f"smtp://reports%40example.com:s3cret%2Fp%40ss@127.0.0.1:{smtp.port}"
        target = parse_smtp_url(url)
        assert (target.starttls, target.username, target.password) == (
            True,
            "reports@example.com",
            "s3cret/p@ss",
        )
        clock.now = DUE
        sender = ReportSender(
            settings=report_settings(settings, url),
            sessionmaker=app.state.sessionmaker,
            clock=clock,
            worker="w1",
            mailer=Mailer(target, timeout=10, tls_context=client_tls),
        )
        assert (await sender.send(DAY)).outcome is Outcome.sent
        assert len(smtp.inbox.messages) == 1
        assert credentials.tried == ["reports@example.com"]

        wrong = parse_smtp_url(f"smtp://reports%40example.com:wrong-one@127.0.0.1:{smtp.port}")
        with pytest.raises(MailError, match="SMTP 535") as refused:
            await Mailer(wrong, timeout=10, tls_context=client_tls).send(
                _tiny(), sender=SENDER, recipients=RECIPIENTS
            )
        assert "wrong-one" not in str(refused.value)
        tried = len(credentials.tried)
        # Without trusting the certificate, nothing is sent (and no password with it).
        with pytest.raises(MailError, match="CERTIFICATE_VERIFY_FAILED"):
            await Mailer(target, timeout=10).send(_tiny(), sender=SENDER, recipients=RECIPIENTS)
        assert len(credentials.tried) == tried
    assert "s3cret" not in caplog.text
    assert "wrong-one" not in caplog.text


async def test_starttls_is_required_with_credentials(tmp_path: Path) -> None:
    """A server that does not offer STARTTLS never gets the password."""
    credentials = Credentials("user", "pw")
    async with smtp_server() as smtp:  # plain: no STARTTLS on offer
        target = parse_smtp_url(f"smtp://user:pw@127.0.0.1:{smtp.port}")
        with pytest.raises(MailError, match="STARTTLS"):
            await Mailer(target, timeout=10).send(_tiny(), sender=SENDER, recipients=RECIPIENTS)
        assert smtp.inbox.messages == []
    assert credentials.tried == []


async def test_smtps_implicit_tls(tmp_path: Path) -> None:
    server_tls, client_tls = self_signed(tmp_path)
    credentials = Credentials("user", "pw")
    async with smtp_server(implicit_tls=server_tls, credentials=credentials) as smtp:
        target = parse_smtp_url(f"smtps://user:pw@127.0.0.1:{smtp.port}")
        assert target.implicit_tls
        assert not target.starttls
        await Mailer(target, timeout=10, tls_context=client_tls).send(
            _tiny(), sender=SENDER, recipients=RECIPIENTS
        )
        assert len(smtp.inbox.messages) == 1
        assert credentials.tried == ["user"]


def _tiny() -> Any:
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"] = "test"
    message["From"] = SENDER
    message["To"] = ", ".join(RECIPIENTS)
    message.set_content("test")
    return message


async def test_the_loop_logs_the_server_without_its_password(
    app: Any, settings: Settings, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="notiflow.report")
    clock.now = DUE - timedelta(hours=1)
    report = report_settings(settings, "smtp://mailer:hunter2@127.0.0.1:1")
    engine = Engine(
        settings=report,
        sessionmaker=app.state.sessionmaker,
        provider_url="http://127.0.0.1:9/v1/send",
        provider_token="unused",
        clock=clock,
    )
    await engine.start()
    try:
        await wait_until(lambda: "daily report on" in caplog.text)
    finally:
        await engine.stop()
    assert "through smtp://mailer:***@127.0.0.1:1" in caplog.text
    assert "hunter2" not in caplog.text
    assert "hunter2" not in repr(report)


async def test_without_recipients_there_is_no_report_loop(
    app: Any, settings: Settings, clock: FakeClock
) -> None:
    engine = Engine(
        settings=settings,
        sessionmaker=app.state.sessionmaker,
        provider_url="http://127.0.0.1:9/v1/send",
        provider_token="unused",
        clock=clock,
    )
    assert engine.reporter is None
    await engine.start()
    try:
        await asyncio.sleep(0.2)
        assert engine.running
        assert not engine.problems()
    finally:
        await engine.stop()
    assert await all_rows(app) == []
