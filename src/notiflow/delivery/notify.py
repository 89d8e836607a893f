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

CHANNEL = "notiflow_engine"
log = logging.getLogger("notiflow.engine")


async def notify(session: AsyncSession) -> None:
    """Wake every worker when this transaction commits (PostgreSQL only; a no-op elsewhere)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(f"NOTIFY {CHANNEL}"))


async def listen(database_url: str, on_notify: Callable[[], None], stop: asyncio.Event) -> None:
    """Call ``on_notify`` for every NOTIFY until ``stop`` is set; reconnect after failures."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    delay = 0.5
    while not stop.is_set():
        connection = None
        try:
            connection = await asyncpg.connect(dsn)
            await connection.add_listener(CHANNEL, lambda *_args: on_notify())
            log.info("listening for changes (PostgreSQL channel %s)", CHANNEL)
            delay = 0.5
            on_notify()  # anything may have happened while not listening
            while not stop.is_set() and not connection.is_closed():
                try:
                    await asyncio.wait_for(stop.wait(), 5.0)
                except TimeoutError:
                    await connection.execute("SELECT 1")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("LISTEN connection failed (%s); retrying in %.1f s", exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 10.0)
        finally:
            if connection is not None and not connection.is_closed():
                await connection.close()
