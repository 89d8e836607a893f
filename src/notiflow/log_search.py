"""Reading a JSON log back: the story of one mailing, message or client (``notiflow logs``).

Every line Notiflow logs about a mailing carries its ``mailing_id``; about a message, its
``message_id`` with its ``mailing_id`` and ``client_id``; about a client, its ``client_id``
(see ``notiflow.logging``). So:

- a mailing's story is every line with its ``mailing_id`` (its messages' lines too);
- a message's story is its own lines, plus the lines about its mailing that name no message
  (the request that created the mailing, its start, its audience, its completion), the mailing
  being learnt from the message's own lines;
- a client's story is its own lines (the requests about it, its messages' lines), plus the lines
  about the mailings of those messages that name no message and no client.

Lines are put in time order (by ``timestamp``; a line without one keeps its place after the line
before it), so the logs of several processes may simply be concatenated.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import structlog

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Subject(StrEnum):
    mailing = "mailing"
    message = "message"
    client = "client"

    @property
    def key(self) -> str:
        return f"{self.value}_id"


@dataclass(frozen=True, slots=True)
class Line:
    at: datetime
    index: int  # its place in the input
    fields: dict[str, Any]
    text: str  # as read, without its line break


@dataclass(slots=True)
class Story:
    lines: list[Line] = field(default_factory=list)
    skipped: int = 0  # lines that are not a JSON object


def _is(value: Any, ident: int) -> bool:
    return value is not None and not isinstance(value, bool) and str(value) == str(ident)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def read_story(lines: Iterable[str], subject: Subject, ident: int) -> Story:
    """The lines of ``lines`` (a JSON log) that tell the story of ``subject`` ``ident``, in time
    order, and how many lines were not JSON objects."""
    story = Story()
    own: list[Line] = []
    # Lines about a mailing as a whole: part of a message's or client's story once one of its
    # own lines names that mailing.
    about_mailings: list[Line] = []
    mailings: set[str] = set()
    last = _EPOCH
    for index, raw in enumerate(lines):
        text = raw.rstrip("\r\n")
        if not text.strip():
            continue
        try:
            fields = json.loads(text)
        except ValueError:
            story.skipped += 1
            continue
        if not isinstance(fields, dict):
            story.skipped += 1
            continue
        last = _time(fields.get("timestamp")) or last
        line = Line(last, index, fields, text)
        if _is(fields.get(subject.key), ident):
            own.append(line)
            if subject is not Subject.mailing and fields.get("mailing_id") is not None:
                mailings.add(str(fields["mailing_id"]))
        elif (
            subject is not Subject.mailing
            and fields.get("mailing_id") is not None
            and fields.get("message_id") is None
            and (subject is Subject.message or fields.get("client_id") is None)
        ):
            about_mailings.append(line)
    chosen = own + [line for line in about_mailings if str(line.fields["mailing_id"]) in mailings]
    chosen.sort(key=lambda line: (line.at, line.index))
    story.lines = chosen
    return story


_console = structlog.dev.ConsoleRenderer(
    colors=False, exception_formatter=structlog.dev.plain_traceback
)


def readable(line: Line) -> str:
    """A line as ``NOTIFLOW_LOG_FORMAT=console`` writes it."""
    rendered: str = _console(None, str(line.fields.get("level", "info")), dict(line.fields))
    return rendered
