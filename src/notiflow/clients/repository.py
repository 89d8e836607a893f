"""All SQL about clients."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    TextClause,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.db.types import UTCDateTime
from notiflow.models import Client, Message

# Parameters per statement stay below SQLite's and asyncpg's limits.
_CHUNK = 5000


def audience_condition(operator_codes: Sequence[str], tags: Sequence[str]) -> ColumnElement[bool]:
    """The clients a mailing's filter selects: the one definition of an audience.

    A client matches when its operator code is in ``operator_codes`` (if any) AND its tag is in
    ``tags`` (if any), where the tag ``""`` stands for clients without a tag (NULL).
    """
    conditions: list[ColumnElement[bool]] = []
    if operator_codes:
        conditions.append(Client.operator_code.in_(operator_codes))
    if tags:
        tagged = Client.tag.in_(tags)
        # "" is stored as NULL; IN also keeps rows written as "" before that rule.
        conditions.append(or_(tagged, Client.tag.is_(None)) if "" in tags else tagged)
    return and_(*conditions) if conditions else true()


def _filtered(
    query: Select[Any],
    *,
    tag: str | None,
    operator_code: str | None,
    phone: str | None,
    phone_contains: str | None = None,
) -> Select[Any]:
    if tag is not None:
        query = query.where(Client.tag == tag)
    if operator_code is not None:
        query = query.where(Client.operator_code == operator_code)
    if phone is not None:
        query = query.where(Client.phone == phone)
    if phone_contains is not None:
        query = query.where(Client.phone.contains(phone_contains, autoescape=True))
    return query


async def get(session: AsyncSession, client_id: int) -> Client | None:
    return await session.get(Client, client_id)


async def get_by_phone(session: AsyncSession, phone: str) -> Client | None:
    return await session.scalar(select(Client).where(Client.phone == phone))


async def list_page(
    session: AsyncSession,
    *,
    tag: str | None,
    operator_code: str | None,
    phone: str | None,
    phone_contains: str | None = None,
    limit: int,
    offset: int,
) -> tuple[Sequence[Client], int]:
    filters: dict[str, Any] = {
        "tag": tag,
        "operator_code": operator_code,
        "phone": phone,
        "phone_contains": phone_contains,
    }
    query = _filtered(select(Client), **filters)
    total = await session.scalar(_filtered(select(func.count()).select_from(Client), **filters))
    rows = await session.scalars(query.order_by(Client.id).limit(limit).offset(offset))
    return rows.all(), int(total or 0)


async def add(session: AsyncSession, client: Client) -> Client:
    session.add(client)
    await session.flush()
    return client


async def remove(session: AsyncSession, client_id: int) -> None:
    """Delete a client; its messages stay, with ``client_id`` set to NULL and their
    ``updated_at`` as it was (it dates their outcome: the daily report counts by it)."""
    await session.execute(
        update(Message)
        .where(Message.client_id == client_id)
        .values(client_id=None, updated_at=Message.updated_at)
    )
    await session.execute(delete(Client).where(Client.id == client_id))


async def existing_phones(session: AsyncSession, phones: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(phones), _CHUNK):
        chunk = phones[start : start + _CHUNK]
        rows = await session.scalars(select(Client.phone).where(Client.phone.in_(chunk)))
        found.update(rows)
    return found


# What an upsert may set of an existing client; the phone is the conflict target.
UPSERT_COLUMNS = ("operator_code", "tag", "timezone")


@lru_cache(maxsize=16)
def _pg_upsert(columns: tuple[str, ...]) -> TextClause:
    updates = ", ".join(f"{name} = excluded.{name}" for name in (*columns, "updated_at"))
    return text(
        f"""
        INSERT INTO clients (phone, operator_code, tag, timezone, created_at, updated_at)
        SELECT phone, operator_code, tag, timezone, :now, :now
        FROM unnest(CAST(:phones AS text[]), CAST(:codes AS text[]), CAST(:tags AS text[]),
                    CAST(:zones AS text[])) AS rows (phone, operator_code, tag, timezone)
        ON CONFLICT (phone) DO UPDATE SET {updates}
        """
    ).bindparams(bindparam("now", type_=UTCDateTime()))


@lru_cache(maxsize=16)
def _sqlite_upsert(columns: tuple[str, ...]) -> Any:
    statement = sqlite_insert(Client)
    return statement.on_conflict_do_update(
        index_elements=[Client.phone],
        set_={name: statement.excluded[name] for name in (*columns, "updated_at")},
    )


async def upsert_many(
    session: AsyncSession,
    rows: Sequence[dict[str, Any]],
    *,
    now: datetime,
    columns: Sequence[str] = UPSERT_COLUMNS,
) -> None:
    """Insert clients (every field of ``rows``); of those whose phone already exists, set only
    ``columns`` (and ``updated_at``).

    One statement shape per set of columns. PostgreSQL gets one set-based statement per chunk
    (arrays through ``unnest``), about ten times faster than a batch of single-row upserts;
    SQLite runs in-process, where a prepared statement executed per row is already fast.
    """
    unknown = set(columns) - set(UPSERT_COLUMNS)
    if unknown:
        raise ValueError(f"not a column an upsert may set: {', '.join(sorted(unknown))}")
    shape = tuple(name for name in UPSERT_COLUMNS if name in columns)
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        statement = _pg_upsert(shape)
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            await session.execute(
                statement,
                {
                    "now": now,
                    "phones": [row["phone"] for row in chunk],
                    "codes": [row["operator_code"] for row in chunk],
                    "tags": [row["tag"] for row in chunk],
                    "zones": [row["timezone"] for row in chunk],
                },
            )
        return
    statement = _sqlite_upsert(shape)
    batch = [{**row, "created_at": now, "updated_at": now} for row in rows]
    for start in range(0, len(batch), _CHUNK):
        await session.execute(statement, batch[start : start + _CHUNK])


async def set_opted_out(
    session: AsyncSession, phones: Sequence[str], *, at: datetime | None, now: datetime
) -> list[int]:
    """Opt these clients out (``at``) or back in (None), where that changes something; return
    the ids of the clients changed."""
    changed: list[int] = []
    for start in range(0, len(phones), _CHUNK):
        condition = (
            Client.opted_out_at.is_(None) if at is not None else Client.opted_out_at.is_not(None)
        )
        result = await session.execute(
            update(Client)
            .where(Client.phone.in_(list(phones[start : start + _CHUNK])), condition)
            .values(opted_out_at=at, updated_at=now)
            .returning(Client.id)
            .execution_options(synchronize_session=False)
        )
        changed.extend(result.scalars())
    return sorted(changed)


# --- audiences -------------------------------------------------------------------------------


async def audience_by_timezone(
    session: AsyncSession, condition: Any, *, opted_out: bool
) -> dict[str, int]:
    """How many clients match ``condition`` in each time zone, among those who opted out or
    among everyone (both read from an index alone)."""
    query = select(Client.timezone, func.count()).where(condition).group_by(Client.timezone)
    if opted_out:
        query = query.where(Client.opted_out_at.is_not(None))
    return {zone: int(count) for zone, count in await session.execute(query)}


async def audience_sample(session: AsyncSession, condition: Any, *, limit: int) -> Sequence[Client]:
    rows = await session.scalars(
        select(Client)
        .where(condition, Client.opted_out_at.is_(None))
        .order_by(Client.id)
        .limit(limit)
    )
    return rows.all()
