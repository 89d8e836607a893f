"""The daily report's settings, its SMTP URL and its schedule: tables of cases, no I/O."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from notiflow.config import Settings
from notiflow.core.timezones import get_tzinfo
from notiflow.reports.render import excerpt, percent
from notiflow.reports.schedule import Backoff, ReportSchedule
from notiflow.reports.smtp_url import parse_smtp_url

ON = {
    "report_to": "ops@example.com",
    "report_from": "notiflow@example.com",
    "smtp_url": "smtp://relay:25",
}


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


# --- NOTIFLOW_SMTP_URL ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host", "port", "implicit_tls", "starttls", "username", "password"),
    [
        ("smtp://localhost", "localhost", 25, False, False, None, None),
        ("smtp://relay.internal:2525", "relay.internal", 2525, False, False, None, None),
        ("smtp://relay?starttls=yes", "relay", 587, False, True, None, None),
        ("smtp://u:p@mail.example.com", "mail.example.com", 587, False, True, "u", "p"),
        ("smtp://u:p@mail.example.com:25", "mail.example.com", 25, False, True, "u", "p"),
        ("SMTP://u%40x.org:p%3Aa%40ss@h:587", "h", 587, False, True, "u@x.org", "p:a@ss"),
        ("smtp://u:p@h?starttls=yes", "h", 587, False, True, "u", "p"),
        ("smtps://u:p@smtp.example.com", "smtp.example.com", 465, True, False, "u", "p"),
        ("smtps://relay:4650", "relay", 4650, True, False, None, None),
        ("smtp://[::1]:25", "::1", 25, False, False, None, None),
    ],
)
def test_smtp_urls_accepted(
    url: str,
    host: str,
    port: int,
    implicit_tls: bool,
    starttls: bool,
    username: str | None,
    password: str | None,
) -> None:
    target = parse_smtp_url(url)
    assert (target.host, target.port, target.implicit_tls, target.starttls) == (
        host,
        port,
        implicit_tls,
        starttls,
    )
    assert (target.username, target.password) == (username, password)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://mail:25", "must start with smtp:// or smtps://"),
        ("mail.example.com:25", "must start with smtp:// or smtps://"),
        ("smtp://", "names no host"),
        ("smtp://u:secret@h:port", "not a valid SMTP URL"),
        ("smtp://u:secret@h:99999", "not a valid SMTP URL"),
        ("smtp://h/path", "has no path"),
        ("smtp://h?tls=1", "unknown SMTP URL parameter 'tls'"),
        ("smtp://h?starttls=maybe", "starttls must be yes or no"),
        ("smtps://h?starttls=yes", "smtps:// is TLS from the start"),
        ("smtp://u:secret@h?starttls=no", "would send the password unencrypted"),
        ("smtp://:secret@h", "a password but no user name"),
        ("smtp://user@h", "a user name but no password"),
    ],
)
def test_smtp_urls_refused_without_showing_the_password(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)) as caught:
        parse_smtp_url(url)
    assert "secret" not in str(caught.value)
    with pytest.raises(ValidationError) as invalid:
        settings(smtp_url=url)
    assert "secret" not in str(invalid.value)


def test_the_url_is_shown_with_the_password_hidden() -> None:
    target = parse_smtp_url("smtp://me%40x.org:hunter2@mail.example.com")
    assert target.redacted() == "smtp://me%40x.org:***@mail.example.com:587"
    assert "hunter2" not in repr(target)
    assert parse_smtp_url("smtp://relay?starttls=yes").redacted() == (
        "smtp://relay:587?starttls=yes"
    )
    assert parse_smtp_url("smtps://[::1]").redacted() == "smtps://[::1]:465"
    configured = settings(**{**ON, "smtp_url": "smtp://me:hunter2@mail.example.com"})
    assert "hunter2" not in repr(configured)
    assert configured.smtp is not None
    assert configured.smtp.password == "hunter2"


# --- the other settings -----------------------------------------------------------------------


def test_off_by_default_and_on_with_recipients() -> None:
    default = settings()
    assert default.report_to == []
    assert default.smtp is None
    assert (default.report_time, default.report_timezone) == (time(7, 0), "UTC")
    assert default.report_max_late == timedelta(hours=6)
    on = settings(
        **{**ON, "report_to": " ops@example.com, Night Shift <night@example.com> ,"},
        report_timezone="europe/moscow",
        report_time="6:30",
    )
    assert on.report_to == ["ops@example.com", "Night Shift <night@example.com>"]
    assert (on.report_timezone, on.report_time) == ("Europe/Moscow", time(6, 30))


@pytest.mark.parametrize(
    ("given", "means"),
    [
        ("21600", timedelta(hours=6)),
        ("90.5", timedelta(seconds=90.5)),
        ("PT2H30M", timedelta(hours=2, minutes=30)),
        ("01:00:00", timedelta(hours=1)),
        ("P1DT12H", timedelta(days=1, hours=12)),
    ],
)
def test_max_late_forms(given: str, means: timedelta) -> None:
    assert settings(report_max_late=given).report_max_late == means


@pytest.mark.parametrize(
    ("values", "field", "says"),
    [
        ({"report_to": "ops@example.com"}, "", "NOTIFLOW_SMTP_URL must be set too"),
        (
            {"report_to": "ops@example.com", "smtp_url": "smtp://h"},
            "",
            "NOTIFLOW_REPORT_FROM must be set too",
        ),
        ({"report_to": "ops"}, "report_to", "not an e-mail address"),
        ({"report_to": "a@b.c, not an address"}, "report_to", "not an e-mail address"),
        ({"report_from": "x@y.z\nBcc: evil@y.z"}, "report_from", "not an e-mail address"),
        ({"report_time": "7"}, "report_time", "HH:MM"),
        ({"report_time": "24:00"}, "report_time", "HH:MM"),
        ({"report_time": "07:60"}, "report_time", "HH:MM"),
        ({"report_timezone": "Mars/Base"}, "report_timezone", "unknown time zone"),
        ({"report_max_late": "0"}, "report_max_late", "greater than 0"),
        ({"report_max_late": "P8D"}, "report_max_late", "less than or equal to 7 days"),
        ({"report_max_late": "soon"}, "report_max_late", "valid timedelta"),
        ({"smtp_timeout": "0"}, "smtp_timeout", "greater than 0"),
    ],
)
def test_bad_report_settings_are_refused(values: dict[str, str], field: str, says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(**values)
    errors = caught.value.errors()
    assert [str(e["loc"][0]) if e["loc"] else "" for e in errors] == [field]
    assert says in str(errors[0]["msg"])


# --- the schedule -----------------------------------------------------------------------------


def schedule(tz: str = "UTC", at: str = "07:00", max_late: timedelta = timedelta(hours=6)) -> Any:
    hours, minutes = (int(x) for x in at.split(":"))
    return ReportSchedule(tz=get_tzinfo(tz), at=time(hours, minutes), max_late=max_late)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("tz", "day", "start", "end"),
    [
        ("UTC", date(2026, 12, 5), utc(2026, 12, 5), utc(2026, 12, 6)),
        ("+05:30", date(2026, 12, 5), utc(2026, 12, 4, 18, 30), utc(2026, 12, 5, 18, 30)),
        ("America/New_York", date(2026, 7, 1), utc(2026, 7, 1, 4), utc(2026, 7, 2, 4)),
        # The days the clocks change are 23 and 25 hours long.
        ("Europe/Berlin", date(2026, 3, 29), utc(2026, 3, 28, 23), utc(2026, 3, 29, 22)),
        ("Europe/Berlin", date(2026, 10, 25), utc(2026, 10, 24, 22), utc(2026, 10, 25, 23)),
    ],
)
def test_day_bounds(tz: str, day: date, start: datetime, end: datetime) -> None:
    assert schedule(tz).day_bounds(day) == (start, end)


@pytest.mark.parametrize(
    ("tz", "at", "now", "latest", "sendable"),
    [
        # Before 07:00 the day before yesterday's is the latest due (and too late by then).
        ("UTC", "07:00", utc(2026, 12, 6, 6, 59), date(2026, 12, 4), []),
        ("UTC", "07:00", utc(2026, 12, 6, 7, 0), date(2026, 12, 5), [date(2026, 12, 5)]),
        ("UTC", "07:00", utc(2026, 12, 6, 13, 0), date(2026, 12, 5), [date(2026, 12, 5)]),
        ("UTC", "07:00", utc(2026, 12, 6, 13, 0, 1), date(2026, 12, 5), []),
        # 07:00 in Moscow is 04:00 UTC.
        ("Europe/Moscow", "07:00", utc(2026, 12, 6, 4, 0), date(2026, 12, 5), [date(2026, 12, 5)]),
        ("Europe/Moscow", "07:00", utc(2026, 12, 6, 3, 59), date(2026, 12, 4), []),
        # 00:30 in Tokyo on the 6th is the 5th in UTC.
        ("Asia/Tokyo", "00:30", utc(2026, 12, 5, 15, 30), date(2026, 12, 5), [date(2026, 12, 5)]),
    ],
)
def test_what_is_due(tz: str, at: str, now: datetime, latest: date, sendable: list[date]) -> None:
    plan = schedule(tz, at)
    assert plan.latest_due(now) == latest
    assert plan.sendable(now) == sendable
    assert plan.too_late(latest, now) == (not sendable)


def test_a_long_max_late_sends_the_days_missed_oldest_first() -> None:
    plan = schedule(max_late=timedelta(days=2))
    assert plan.sendable(utc(2026, 12, 6, 8, 0)) == [date(2026, 12, 4), date(2026, 12, 5)]


@pytest.mark.parametrize(
    ("attempts", "delay"),
    [(1, 60), (2, 120), (3, 240), (5, 960), (6, 1800), (50, 1800)],
)
def test_backoff_doubles_up_to_its_bound(attempts: int, delay: float) -> None:
    assert Backoff().delay(attempts).total_seconds() == delay


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, "n/a"), (0.0, "0.0 %"), (0.5556, "55.6 %"), (0.99999, "99.9 %"), (1.0, "100.0 %")],
)
def test_percent(value: float | None, shown: str) -> None:
    assert percent(value) == shown


def test_excerpt_is_one_short_line() -> None:
    assert excerpt("a\n\tb  c") == "a b c"
    long = excerpt("x" * 100)
    assert len(long) == 60
    assert long.endswith("…")
