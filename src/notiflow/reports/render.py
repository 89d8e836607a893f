"""The report as an e-mail: a plain-text part and an HTML part (multipart/alternative), from
the Jinja2 templates beside this module. The HTML template is autoescaped: a mailing's text or an
error is shown as written, never read as markup."""

from __future__ import annotations

import re
from datetime import datetime, tzinfo
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from notiflow.reports.service import DayReport
from notiflow.reports.smtp_url import envelope_address

EXCERPT = 60


def number(value: int) -> str:
    return f"{value:,}"


def percent(value: float | None) -> str:
    if value is None:
        return "n/a"
    shown = f"{100 * value:.1f}"
    if shown == "100.0" and value < 1:  # never say 100 % of a day with a failure
        shown = "99.9"
    return f"{shown} %"


def excerpt(text: str, width: int = EXCERPT) -> str:
    """A mailing's text on one line, cut to ``width`` characters."""
    line = re.sub(r"\s+", " ", text).strip()
    return line if len(line) <= width else line[: width - 1].rstrip() + "…"


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("notiflow.reports", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(number=number, percent=percent, excerpt=excerpt)
    return environment


def _context(report: DayReport, tz: tzinfo) -> dict[str, object]:
    def local(value: datetime) -> str:
        return value.astimezone(tz).strftime("%Y-%m-%d %H:%M")

    return {
        "report": report,
        "day": f"{report.day:%A} {report.day.day} {report.day:%B %Y}",
        "start_utc": f"{report.start:%Y-%m-%d %H:%M}",
        "end_utc": f"{report.end:%Y-%m-%d %H:%M}",
        "made_at": local(report.made_at),
        "totals": report.totals,
    }


def subject(report: DayReport) -> str:
    """Short enough for one header line (78 characters)."""
    count = len(report.mailings)
    mailings = f"{count} mailing" + ("" if count == 1 else "s")
    return (
        f"Notiflow report {report.day.isoformat()}: {mailings}, "
        f"{number(report.totals['sent'])} sent ({percent(report.success_rate)})"
    )


def text(report: DayReport, tz: tzinfo) -> str:
    return _environment().get_template("daily.txt").render(_context(report, tz))


def html(report: DayReport, tz: tzinfo) -> str:
    return _environment().get_template("daily.html").render(_context(report, tz))


def email(
    report: DayReport, tz: tzinfo, *, sender: str, recipients: list[str], now: datetime
) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject(report)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(now)
    domain = envelope_address(sender).rpartition("@")[2] or None
    message["Message-ID"] = make_msgid("report", domain=domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    message.set_content(text(report, tz))
    message.add_alternative(html(report, tz), subtype="html")
    return message
