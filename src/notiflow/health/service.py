"""Health of a process, the same rules for the API (``/health*`` of ``create_app``) and for each
``notiflow worker`` (its own HTTP endpoint, ``notiflow.worker_http``):

- ``/health``: ``failing`` (503) when the database is unreachable or the delivery engine this
  process should run is dead or stalled; ``degraded`` (200) when the provider fails or refuses
  the token; otherwise ``ok``.
- ``/health/live``: the process is up (no database access): for an orchestrator's liveness probe.
- ``/health/ready``: the database answers and its schema is at the migrations' head: for a
  readiness probe.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from notiflow import __version__
from notiflow.health.schemas import EngineHealth, Health, Liveness, Readiness

if TYPE_CHECKING:
    from notiflow.delivery.engine import Engine

DB_TIMEOUT = 5.0  # a health check answers within this even if the database hangs


async def _probe(engine: AsyncEngine, sql: str) -> Any:
    """One statement straight to the driver, outside any transaction: on SQLite every transaction
    takes the write lock first, and a health check must not wait for another writer."""
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        if engine.dialect.name == "sqlite":
            cursor = await driver.execute(sql)
            try:
                row = await cursor.fetchone()
            finally:
                await cursor.close()
            return None if row is None else row[0]
        return await driver.fetchval(sql)


async def _checked(engine: AsyncEngine, sql: str) -> tuple[str, Any]:
    """``("ok", value)``, or the error and None."""
    try:
        value = await asyncio.wait_for(_probe(engine, sql), DB_TIMEOUT)
    except TimeoutError:
        return f"error: no answer within {DB_TIMEOUT:.0f} s", None
    except Exception as exc:  # a health check reports any failure instead of raising
        return f"error: {type(exc).__name__}", None
    return "ok", value


async def database(engine: AsyncEngine) -> str:
    """``ok`` when the database answers, else the error."""
    state, _ = await _checked(engine, "SELECT 1")
    return state


def engine_health(delivery: Engine | None) -> EngineHealth:
    if delivery is None:
        return EngineHealth(running=False, provider="not_here")
    return EngineHealth(**delivery.health())


async def health(
    db_engine: AsyncEngine, delivery: Engine | None, *, runs_engine: bool
) -> tuple[Health, int]:
    """The answer of ``/health`` and its status code. ``runs_engine``: this process should run a
    delivery engine (``serve``, ``worker``), so none is a failure."""
    state = await database(db_engine)
    engine = engine_health(delivery)
    status, reason = "ok", None
    if state != "ok":
        status, reason = "failing", f"the database is unreachable ({state})"
    elif engine.problems or (runs_engine and delivery is None):
        status = "failing"
        reason = "; ".join(engine.problems) or "the delivery engine has not started"
    elif engine.provider not in ("ok", "not_here"):
        status = "degraded"
        reason = f"the provider: {engine.provider} ({engine.provider_error})"
    body = Health(status=status, reason=reason, version=__version__, database=state, engine=engine)
    return body, 503 if status == "failing" else 200


def liveness() -> tuple[Liveness, int]:
    return Liveness(status="ok", version=__version__), 200


@functools.cache
def migrations_head() -> str:
    """The head revision of the migrations shipped with this version (read once)."""
    from alembic.script import ScriptDirectory

    from notiflow.db.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    assert head is not None, "the migrations have one head"
    return head


async def readiness(db_engine: AsyncEngine) -> tuple[Readiness, int]:
    """The answer of ``/health/ready`` and its status code: one cheap read of the database's
    schema revision, compared with the migrations' head."""
    head = migrations_head()
    state, revision = await _checked(db_engine, "SELECT version_num FROM alembic_version")
    reason = None
    if state != "ok":
        # A database that answers but has no alembic_version table was never migrated.
        if await database(db_engine) == "ok":
            state = "ok"
            reason = f"the database is not migrated (head: {head}); run `notiflow migrate`"
        else:
            reason = f"the database is unreachable ({state})"
    elif revision is None:
        reason = f"the database is not migrated (head: {head}); run `notiflow migrate`"
    elif revision != head:
        reason = (
            f"the database schema is at revision {revision}, not at {head}: run "
            "`notiflow migrate` (or it was migrated by a newer version of Notiflow)"
        )
    body = Readiness(
        status="failing" if reason else "ok",
        reason=reason,
        database=state,
        revision=revision,
        head=head,
    )
    return body, 503 if reason else 200
