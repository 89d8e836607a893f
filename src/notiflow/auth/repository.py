from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.models import ApiToken


async def find_by_hash(session: AsyncSession, token_hash: str) -> ApiToken | None:
    return await session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash))


async def get(session: AsyncSession, token_id: int) -> ApiToken | None:
    return await session.get(ApiToken, token_id)


async def add(session: AsyncSession, token: ApiToken) -> ApiToken:
    session.add(token)
    await session.flush()
    return token


async def list_all(session: AsyncSession) -> Sequence[ApiToken]:
    return (await session.scalars(select(ApiToken).order_by(ApiToken.id))).all()


async def list_page(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[Sequence[ApiToken], int]:
    rows = await session.scalars(select(ApiToken).order_by(ApiToken.id).limit(limit).offset(offset))
    return rows.all(), await count(session)


async def count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(ApiToken)) or 0)


async def remove(session: AsyncSession, token_id: int) -> bool:
    result = await session.execute(delete(ApiToken).where(ApiToken.id == token_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]
