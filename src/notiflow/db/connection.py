"""Whether the configured database can be used, and if not, why, in one sentence for the operator.

The commands check this before they first touch the database, so that a wrong
NOTIFLOW_DATABASE_URL (no server on that port, a database that does not exist, a wrong password,
an SQLite file in a directory that does not exist) stops them with a sentence, not a traceback.
"""

from __future__ import annotations

import socket
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from notiflow.config import Settings
from notiflow.db.engine import create_engine

VARIABLE = "NOTIFLOW_DATABASE_URL"
# SQLSTATEs PostgreSQL answers a connection with.
_NO_SUCH_DATABASE = "3D000"
_BAD_CREDENTIALS = ("28000", "28P01")


class DatabaseUnreachable(Exception):
    """The configured database cannot be used; ``str()`` says why and what to do, in a sentence."""


async def ensure_reachable(settings: Settings) -> None:
    """Connect once to ``settings.database_url``, or raise :class:`DatabaseUnreachable`."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        directory = Path(url.database).parent
        if not directory.is_dir():
            reason = (
                f"{directory} is not a directory"
                if directory.exists()
                else f"the directory {directory} does not exist"
            )
            advice = f"create it, or point {VARIABLE} at a file in an existing directory"
            raise DatabaseUnreachable(_sentence(url, reason, advice))
    engine = create_engine(settings, pooled=False)
    try:
        async with engine.connect():
            pass
    except Exception as exc:  # whatever stops the connection, the operator gets one sentence
        raise DatabaseUnreachable(_explain(url, exc)) from exc
    finally:
        await engine.dispose()


def _explain(url: URL, exc: Exception) -> str:
    where = f"{url.host or 'localhost'}:{url.port or 5432}"
    if isinstance(exc, socket.gaierror):
        return _sentence(url, f"the host {url.host!r} is unknown", f"fix the host in {VARIABLE}")
    if isinstance(exc, ConnectionRefusedError):
        return _sentence(
            url,
            f"nothing accepts connections at {where}",
            f"start PostgreSQL there, or fix the host and port in {VARIABLE}",
        )
    if isinstance(exc, TimeoutError):
        return _sentence(
            url, f"{where} did not answer in time", f"check the host and port in {VARIABLE}"
        )
    reason = _reason(exc)
    sqlstate = getattr(exc.orig, "sqlstate", None) if isinstance(exc, DBAPIError) else None
    if sqlstate == _NO_SUCH_DATABASE:
        return _sentence(
            url,
            reason,
            f"create it (createdb {url.database}), or fix the database name in {VARIABLE}",
        )
    if sqlstate in _BAD_CREDENTIALS:
        return _sentence(url, reason, f"fix the user or password in {VARIABLE}")
    if url.get_backend_name() == "sqlite":
        return _sentence(url, reason, f"check the file's path and permissions in {VARIABLE}")
    return _sentence(url, reason, f"check {VARIABLE} and that the database server runs")


def _reason(exc: Exception) -> str:
    error = exc.orig if isinstance(exc, DBAPIError) else exc
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _sentence(url: URL, reason: str, advice: str) -> str:
    shown = url.render_as_string(hide_password=True)
    return f"{VARIABLE}: cannot use the database {shown}: {reason}; {advice}."
