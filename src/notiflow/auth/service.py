from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.auth import repository
from notiflow.models import ApiToken

TOKEN_PREFIX = "nf_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


async def create(session: AsyncSession, *, name: str) -> tuple[ApiToken, str]:
    """Store a new token and return it with its plain text (shown once, never stored)."""
    plain = generate_token()
    token = await repository.add(session, ApiToken(name=name, token_hash=hash_token(plain)))
    return token, plain


async def is_valid(session: AsyncSession, token: str, *, configured: Sequence[str]) -> bool:
    for candidate in configured:
        if hmac.compare_digest(candidate.encode(), token.encode("utf-8", "surrogatepass")):
            return True
    return await repository.find_by_hash(session, hash_token(token)) is not None


async def list_all(session: AsyncSession) -> Sequence[ApiToken]:
    return await repository.list_all(session)


async def revoke(session: AsyncSession, token_id: int) -> bool:
    return await repository.remove(session, token_id)


async def count(session: AsyncSession) -> int:
    return await repository.count(session)
