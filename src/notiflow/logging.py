"""Log set-up: every line of the process — Notiflow's, uvicorn's, aiohttp's — in one format.

Code logs through the standard library with a constant event and its fields in ``extra``::

    log.info("mailing completed", extra={"mailing_id": 7, "sent": 10, "failed": 1})

and context bound with ``structlog.contextvars`` (a request's ``request_id`` and the ids of its
path, see ``notiflow.core.request_context``) joins every line logged inside it. One handler on
the root logger renders each record through structlog's ``ProcessorFormatter``: as a JSON object
per line (``timestamp``, ``level``, ``logger``, ``event``, then the fields; an exception as the
``exception`` field), or as a readable ``key=value`` line. ``auto`` picks JSON unless stderr is a
terminal. ``notiflow logs`` reads the JSON form back (``notiflow.log_search``).

Per-message lines of the sender are DEBUG and guarded by a cached ``isEnabledFor``, so at INFO a
message costs nothing here.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

# The fields every JSON line starts with, in this order.
HEAD = ("timestamp", "level", "logger", "event")
_LONG_DIGITS = re.compile(r"\d{7,}")  # a phone number, in any form


def redact_phones(text: str | None) -> str | None:
    """``text`` (e.g. a provider's answer) with every run of 7 or more digits cut to its first
    four: phone numbers are logged at DEBUG only."""
    if text is None:
        return None
    return _LONG_DIGITS.sub(lambda match: match.group()[:4] + "…", text)


class LogFormat(StrEnum):
    auto = "auto"
    json = "json"
    console = "console"


def resolve_format(requested: LogFormat | str, stream: TextIO) -> LogFormat:
    """``auto`` is ``console`` on a terminal and ``json`` anywhere else."""
    chosen = LogFormat(requested)
    if chosen is not LogFormat.auto:
        return chosen
    isatty = getattr(stream, "isatty", None)
    return LogFormat.console if isatty is not None and isatty() else LogFormat.json


def _timestamp(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """When the record was made (not formatted), ISO 8601 in UTC with milliseconds."""
    record: logging.LogRecord | None = event_dict.get("_record")
    at = datetime.fromtimestamp(record.created, UTC) if record is not None else datetime.now(UTC)
    event_dict["timestamp"] = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return event_dict


def _uvicorn_fields(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """uvicorn's access line as fields (its arguments are: client, method, path with query,
    HTTP version, status), at the level that turns it on (``DEBUG``: a path may hold a phone);
    its coloured copy of a message dropped."""
    args = event_dict.pop("positional_args", None)
    event_dict.pop("color_message", None)
    record: logging.LogRecord | None = event_dict.get("_record")
    if record is not None and record.name == "uvicorn.access" and args and len(args) == 5:
        client, method, path, _version, status = args
        event_dict["event"] = "http request"
        event_dict["level"] = "debug"
        event_dict.update(client=client, method=method, path=path, status_code=status)
    return event_dict


def _ordered(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    head = {key: event_dict.pop(key) for key in HEAD if key in event_dict}
    return {**head, **event_dict}


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, Enum):
        return value.value
    return str(value)


def build_formatter(fmt: LogFormat, *, colors: bool = False) -> logging.Formatter:
    """The formatter of the root handler, for records of the standard library and of structlog
    loggers alike."""
    renderer: Processor
    if fmt is LogFormat.console:
        renderer = structlog.dev.ConsoleRenderer(
            colors=colors, exception_formatter=structlog.dev.plain_traceback
        )
        render_exception: list[Processor] = []  # the console renderer prints it below the line
    else:
        renderer = structlog.processors.JSONRenderer(default=_json_default)
        render_exception = [structlog.processors.format_exc_info]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder()],
        pass_foreign_args=True,
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            _uvicorn_fields,
            _timestamp,
            *render_exception,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _ordered,
            renderer,
        ],
    )


def configure_logging(
    level: str, fmt: LogFormat | str = LogFormat.auto, *, stream: TextIO | None = None
) -> LogFormat:
    """One handler on the root logger, writing to ``stream`` (stderr) in ``fmt``; return the
    format chosen."""
    stream = stream if stream is not None else sys.stderr
    chosen = resolve_format(fmt, stream)
    handler = logging.StreamHandler(stream)
    colors = chosen is LogFormat.console and bool(getattr(stream, "isatty", lambda: False)())
    handler.setFormatter(build_formatter(chosen, colors=colors))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # SQLAlchemy and asyncio are loud at INFO; keep them to warnings unless debugging.
    for name in ("sqlalchemy", "aiosqlite", "asyncio"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # A structlog logger, should one be used, goes through the same handler and formatter.
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return chosen
