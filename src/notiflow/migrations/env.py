"""Alembic environment: async engines, batch mode on SQLite, the URL from Notiflow's settings."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

import notiflow.models  # noqa: F401  (registers every table)
from notiflow.config import Settings
from notiflow.db.base import Base
from notiflow.db.engine import create_engine

config = context.config
target_metadata = Base.metadata


def _do_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Several processes (api, workers) may start at once on a new database: one
            # migrates, the others wait here and then find the schema up to date.
            connection.execute(text("SELECT pg_advisory_xact_lock(724311)"))
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_engine(Settings(database_url=url))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_do_run)
            await connection.commit()
    finally:
        await engine.dispose()


def _url() -> str:
    return config.attributes.get("database_url") or Settings().database_url


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async(_url()))
