"""Migrations are the only way the schema is made: they must match the models on both databases."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from notiflow.db.migrate import check, downgrade, upgrade


def test_models_match_migrations(db_url: str) -> None:
    check(db_url)  # raises when autogenerate would find a difference


async def _index_names(url: str) -> dict[str, set[str]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: {
                    table: {str(index["name"]) for index in inspect(sync).get_indexes(table)}
                    for table in ("messages", "clients", "webhook_deliveries")
                }
            )
    finally:
        await engine.dispose()


def test_queue_indexes_exist(db_url: str) -> None:
    indexes = asyncio.run(_index_names(db_url))
    assert {"ix_messages_due", "ix_messages_lease"} <= indexes["messages"]
    assert {
        "ix_webhook_deliveries_due",
        "ix_webhook_deliveries_webhook_id_id",
    } <= indexes["webhook_deliveries"]


def test_downgrade_and_upgrade_again(tmp_path: Path, sqlite_template: Path) -> None:
    path = tmp_path / "roundtrip.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    downgrade(url, "base")
    assert asyncio.run(_tables(url)) == {"alembic_version"}
    upgrade(url)
    check(url)


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


@pytest.mark.postgres_only
async def test_due_index_is_partial_on_postgres(db_url: str) -> None:
    from sqlalchemy import text

    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as connection:
            definition = await connection.scalar(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_messages_due'")
            )
    finally:
        await engine.dispose()
    assert "WHERE" in definition
    assert "pending" in definition


async def _insert_token(url: str) -> None:
    from sqlalchemy import text

    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO api_tokens (name, token_hash, created_at) "
                    "VALUES ('old', 'abc', CURRENT_TIMESTAMP)"
                )
            )
    finally:
        await engine.dispose()


async def _token_roles(url: str) -> list[tuple[str, str]]:
    from sqlalchemy import text

    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT name, role FROM api_tokens"))
            return [(row[0], row[1]) for row in rows]
    finally:
        await engine.dispose()


def test_tokens_made_before_roles_become_admin(db_url: str) -> None:
    """0004 gives every existing token the admin role: they could do everything before."""
    downgrade(db_url, "0001")
    try:
        asyncio.run(_insert_token(db_url))
    finally:
        upgrade(db_url)
    assert asyncio.run(_token_roles(db_url)) == [("old", "admin")]
    check(db_url)
