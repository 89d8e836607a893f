from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.audit.notes import note
from notiflow.auth import repository
from notiflow.auth.principal import ConfiguredToken, Principal
from notiflow.auth.roles import Role
from notiflow.core.errors import NotFound
from notiflow.models import ApiToken

TOKEN_PREFIX = "nf_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


async def create(
    session: AsyncSession, *, name: str, role: Role = Role.admin
) -> tuple[ApiToken, str]:
    """Store a new token and return it with its plain text (shown once, never stored)."""
    plain = generate_token()
    token = await repository.add(
        session, ApiToken(name=name, role=role.value, token_hash=hash_token(plain))
    )
    note(session, name=name, role=role.value)
    return token, plain


async def authenticate(
    session: AsyncSession, token: str, *, configured: Sequence[ConfiguredToken]
) -> Principal | None:
    """Who ``token`` is: a configured token or a stored one."""
    return await authenticate_hash(session, hash_token(token), configured=configured)


async def authenticate_hash(
    session: AsyncSession, token_hash: str, *, configured: Sequence[ConfiguredToken]
) -> Principal | None:
    """Who the token of this hash is (see :func:`hash_token`): a configured token (compared in
    constant time) or a stored one. The admin UI's session keeps the hash, never the token."""
    presented = token_hash.encode()
    found = None
    for candidate in configured:
        # Every candidate is compared, so the time taken does not tell which one matched.
        if hmac.compare_digest(hash_token(candidate.token).encode(), presented) and found is None:
            found = candidate.principal
    if found is not None:
        return found
    stored = await repository.find_by_hash(session, token_hash)
    if stored is None:
        return None
    return Principal(name=stored.name, role=Role(stored.role), token_id=stored.id)


async def list_all(session: AsyncSession) -> Sequence[ApiToken]:
    return await repository.list_all(session)


async def list_page(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[Sequence[ApiToken], int]:
    return await repository.list_page(session, limit=limit, offset=offset)


async def revoke(session: AsyncSession, token_id: int) -> bool:
    return await repository.remove(session, token_id)


async def delete(session: AsyncSession, token_id: int) -> None:
    """Revoke a stored token; 404 when there is none with that id."""
    token = await repository.get(session, token_id)
    if token is None:
        raise NotFound(f"token {token_id} not found")
    note(session, name=token.name, role=token.role)
    await repository.remove(session, token_id)


async def count(session: AsyncSession) -> int:
    return await repository.count(session)
