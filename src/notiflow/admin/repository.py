from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.models import AppSecret


async def get_secret(session: AsyncSession, name: str) -> str | None:
    row = await session.get(AppSecret, name)
    return None if row is None else row.value


async def add_secret(session: AsyncSession, *, name: str, value: str, at: datetime) -> None:
    session.add(AppSecret(name=name, value=value, created_at=at))
    await session.flush()
