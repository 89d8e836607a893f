"""Cross-process wake-ups on PostgreSQL: the API NOTIFYs, every worker LISTENs.

NOTIFY is transactional, so a worker is woken only once the change it is woken for has committed.
On SQLite (one process in practice) the in-process signal and a short poll do the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.db.session import on_commit
from notiflow.delivery.signal import HaltKind

Halt = Callable[[HaltKind, int], None]

CHANNEL = "notiflow_engine"
log = logging.getLogger("notiflow.engine")


async def notify(session: AsyncSession, payload: str = "") -> None:
    """Wake every worker when this transaction commits (PostgreSQL only; a no-op elsewhere).

    ``payload`` (``"mailing:7"``, ``"client:42"``) names what workers must stop sending to at
    once (see ``signal.EngineSignal.halt``); empty: just look at the database again.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {
                "channel": CHANNEL,
                "payload": payload,
            },
        )


async def halt_after_commit(
    session: AsyncSession, halt: Halt | None, kind: HaltKind, ident: int
) -> None:
    """Once this transaction commits, tell every engine to start no request for this mailing or
    client (this process's at once through ``halt``, others' by NOTIFY), then to look at the
    database again."""
    if halt is not None:
        on_commit(session, lambda: halt(kind, ident))
    await notify(session, f"{kind}:{ident}")


def parse_halt(payload: str) -> tuple[HaltKind, int] | None:
    """The halt a NOTIFY payload asks for, if any."""
    kind, _, ident = payload.partition(":")
    if kind in ("mailing", "client") and ident.isdigit():
        return ("mailing" if kind == "mailing" else "client"), int(ident)
    return None


async def listen(database_url: str, on_notify: Callable[[str], None], stop: asyncio.Event) -> None:
    """Call ``on_notify(payload)`` for every NOTIFY until ``stop`` is set; reconnect after
    failures."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    delay = 0.5
    while not stop.is_set():
        connection = None
        try:
            connection = await asyncpg.connect(dsn)
            await connection.add_listener(CHANNEL, lambda *args: on_notify(str(args[-1] or "")))
            log.info("listening for changes", extra={"channel": CHANNEL})
            delay = 0.5
            on_notify("")  # anything may have happened while not listening
            while not stop.is_set() and not connection.is_closed():
                try:
                    await asyncio.wait_for(stop.wait(), 5.0)
                except TimeoutError:
                    await connection.execute("SELECT 1")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning(
                "LISTEN connection failed: retrying",
                extra={"error": str(exc), "retry_in_seconds": delay},
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 10.0)
        finally:
            if connection is not None and not connection.is_closed():
                await connection.close()
