"""The daily report end to end: a real mailing sent to the sandbox provider and reported; three
`notiflow worker` processes racing for one day's report; `notiflow report send` by hand."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from notiflow.config import Settings
from notiflow.db.session import transaction
from notiflow.messages.repository import NewMessage
from notiflow.models import DailyReport, Message, MessageStatus
from notiflow.reports.sender import Outcome, ReportSender
from tests.conftest import TOKEN
from tests.delivery_support import LiveClock, ThreadedSandbox, wait_for
from tests.helpers import make_mailing, seed_messages
from tests.smtp_support import Inbox, smtp_server
from tests.test_delivery import StartEngine, completed, get_stats, import_clients

NOTIFLOW = [sys.executable, "-m", "notiflow"]
SENDER = "notiflow@example.com"


@pytest.fixture
def clock() -> LiveClock:
    return LiveClock()


async def rows(app: Any) -> list[DailyReport]:
    async with transaction(app.state.sessionmaker) as session:
        return list(await session.scalars(select(DailyReport).order_by(DailyReport.report_date)))


# --- a real mailing, reported -----------------------------------------------------------------


async def test_the_report_matches_the_statistics_of_a_real_mailing(
    app: Any,
    api: httpx.AsyncClient,
    settings: Settings,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    """A mailing sent to the sandbox (some refused for good, some retried) at midday in
    Kolkata; the next morning's report says what its statistics say."""
    clock.set(datetime(2026, 12, 5, 6, 30, tzinfo=UTC))  # 12:00 in Kolkata
    await import_clients(api, 60)
    provider.configure(reject_rate=0.25, error_rate=0.2)
    await start_engine()
    response = await api.post(
        "/api/v1/mailings",
        json={
            "text": "Diwali <sale> & more",
            "start_time": clock.now.isoformat(),
            "end_time": (clock.now + timedelta(hours=1)).isoformat(),
        },
    )
    assert response.status_code == 201, response.text
    mailing_id = response.json()["id"]
    await wait_for(lambda: completed(api, mailing_id), within=60)
    stats = (await get_stats(api, mailing_id))["stats"]
    assert stats["sent"] > 0
    assert stats["failed"] > 0
    async with transaction(app.state.sessionmaker) as session:
        errors = Counter(
            await session.scalars(
                select(Message.last_error).where(
                    Message.mailing_id == mailing_id, Message.status == "failed"
                )
            )
        )

    clock.set(datetime(2026, 12, 6, 1, 30, tzinfo=UTC))  # 07:00 the next day
    async with smtp_server() as smtp:
        sender = ReportSender(
            settings=Settings(
                database_url=settings.database_url,
                api_tokens=[TOKEN],
                report_to=["ops@example.com"],
                report_from=SENDER,
                report_timezone="Asia/Kolkata",
                smtp_url=f"smtp://127.0.0.1:{smtp.port}",
                _env_file=None,
            ),
            sessionmaker=app.state.sessionmaker,
            clock=clock,
            worker="reporter",
        )
        assert (await sender.send(date(2026, 12, 5))).outcome is Outcome.sent
        text = smtp.inbox.messages[0].part("plain")
        page = smtp.inbox.messages[0].part("html")
    block = text.split(f"Mailing #{mailing_id} (completed): Diwali <sale> & more\n")[1]
    lines = block.split("\n\n")[0].splitlines()
    assert lines[0] == (
        f"  ended that day: {stats['sent']} sent, {stats['failed']} failed, "
        f"{stats['expired']} expired, {stats['cancelled']} cancelled"
    )
    rate = 100 * stats["sent"] / (stats["sent"] + stats["failed"] + stats["expired"])
    assert lines[1] == f"  success rate: {rate:.1f} %"
    assert lines[2] == f"  audience: {stats['total']} messages, 0 still to send"
    assert lines[3] == "  top errors:"
    reported = [line.split(None, 1) for line in lines[4:]]
    top = sorted(errors.items(), key=lambda item: (-item[1], item[0]))[:5]  # ties by text
    assert [(error, int(n)) for n, error in reported] == top
    assert f"1 mailing ran; {stats['total']} messages ended" in text
    assert "Diwali &lt;sale&gt; &amp; more" in page


# --- worker processes -------------------------------------------------------------------------


def _environment(settings: Settings, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFLOW_")}
    # Due two minutes ago, today (UTC): each worker finds yesterday's report due at start.
    due = datetime.now(UTC) - timedelta(minutes=2)
    env.update(
        {
            "NOTIFLOW_DATABASE_URL": settings.database_url,
            "NOTIFLOW_REPORT_TO": "ops@example.com,night@example.com",
            "NOTIFLOW_REPORT_FROM": f"Notiflow <{SENDER}>",
            "NOTIFLOW_REPORT_TIME": due.strftime("%H:%M"),
            "NOTIFLOW_REPORT_MAX_LATE": "PT1H",
            "NOTIFLOW_SMTP_URL": f"smtp://127.0.0.1:{port}",
            "NOTIFLOW_ENGINE_POLL_SECONDS": "0.2",
            "NOTIFLOW_LOG_LEVEL": "INFO",
            "NOTIFLOW_WORKER_PORT": "0",  # three workers on one host: no metrics port each
        }
    )
    return env


async def test_three_worker_processes_send_one_email(
    app: Any, settings: Settings, tmp_path: Path
) -> None:
    inbox = Inbox(delay=2.0)  # a slow server: the winner's claim is held while the others try
    async with smtp_server(inbox) as smtp:
        env = _environment(settings, smtp.port)
        logs = [tmp_path / f"worker-{i}.log" for i in range(3)]
        workers = []
        for log in logs:
            with log.open("wb") as out:
                workers.append(
                    await asyncio.create_subprocess_exec(
                        *NOTIFLOW, "worker", env=env, stdout=out, stderr=out
                    )
                )
        try:

            async def all_on() -> bool:
                return all("daily report on" in log.read_text() for log in logs)

            await wait_for(all_on, within=60)

            async def sent() -> bool:
                found = await rows(app)
                return bool(found) and found[0].status == "sent"

            await wait_for(sent, within=30)
            await asyncio.sleep(1.0)  # room for a second e-mail, were there a bug
        finally:
            for worker in workers:
                if worker.returncode is None:
                    worker.send_signal(signal.SIGTERM)
            codes = [await asyncio.wait_for(worker.wait(), 30) for worker in workers]
        assert codes == [0, 0, 0]
        assert len(inbox.messages) == 1
        assert inbox.messages[0].rcpt_tos == ["ops@example.com", "night@example.com"]
    found = await rows(app)
    assert len(found) == 1
    assert (found[0].status, found[0].attempts) == ("sent", 1)
    texts = [log.read_text() for log in logs]
    events = [
        json.loads(line)["event"]
        for text in texts
        for line in text.splitlines()
        if line.startswith("{")
    ]
    assert events.count("daily report sent") == 1
    assert not any("Traceback" in text for text in texts)


# --- by hand ----------------------------------------------------------------------------------


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *NOTIFLOW,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_report_send_by_hand(
    app: Any, api: httpx.AsyncClient, settings: Settings, clock: LiveClock
) -> None:
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    noon = datetime(yesterday.year, yesterday.month, yesterday.day, 12, tzinfo=UTC)
    clock.set(noon - timedelta(hours=1))
    mailing = await make_mailing(api, clock.now, text="Hello from the CLI test")
    clock.set(noon)
    assert (await api.post(f"/api/v1/mailings/{mailing['id']}/start")).status_code == 200
    await seed_messages(
        app,
        mailing["id"],
        [NewMessage(client_id=i, status=MessageStatus.sent, sent_at=noon) for i in range(3)]
        + [NewMessage(client_id=9, status=MessageStatus.failed, last_error="HTTP 400: no")],
        now=noon,
    )
    plain = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFLOW_")}
    plain["NOTIFLOW_DATABASE_URL"] = settings.database_url

    code, out, err = await run_cli("report", "send", "--dry-run", env=plain)
    assert code == 0, err
    assert out.startswith(
        f"Subject: Notiflow report {yesterday}: 1 mailing, 3 sent (75.0 %)\n\n"
        "Notiflow daily report: "
    )
    assert f"Mailing #{mailing['id']} (running): Hello from the CLI test\n" in out
    assert "  ended that day: 3 sent, 1 failed, 0 expired, 0 cancelled\n" in out
    assert "         1  HTTP 400: no\n" in out
    assert await rows(app) == []  # a dry run claims nothing

    code, _, err = await run_cli("report", "send", env=plain)
    assert code == 2
    assert "NOTIFLOW_REPORT_TO is not set" in err

    async with smtp_server() as smtp:
        env = _environment(settings, smtp.port)
        code, out, err = await run_cli("report", "send", env=env)
        assert code == 0, err
        assert out.startswith(
            f"the report for {yesterday} was sent to ops@example.com, night@example.com"
        )
        assert len(smtp.inbox.messages) == 1
        assert "3 sent, 1 failed" in smtp.inbox.messages[0].part("plain")

        code, _, err = await run_cli("report", "send", "--date", str(yesterday), env=env)
        assert code == 1
        assert f"the report for {yesterday} was already sent at" in err
        assert "--force sends it again" in err
        assert len(smtp.inbox.messages) == 1

        code, _, err = await run_cli("report", "send", "--force", env=env)
        assert code == 0, err
        assert len(smtp.inbox.messages) == 2

        today = datetime.now(UTC).date()
        code, _, err = await run_cli("report", "send", "--date", str(today), env=env)
        assert code == 2
        assert "has not ended yet" in err
        code, _, err = await run_cli("report", "send", "--date", "5/12/2026", env=env)
        assert code == 2
        assert "is not a date (YYYY-MM-DD)" in err
        assert len(smtp.inbox.messages) == 2
    (row,) = await rows(app)
    assert (row.report_date, row.status, row.attempts) == (yesterday, "sent", 2)
    assert row.claimed_by.startswith("cli-")
