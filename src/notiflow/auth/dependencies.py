from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from notiflow.auth import service
from notiflow.core.errors import AppError
from notiflow.deps import SessionDep, SettingsDep

_bearer = HTTPBearer(
    auto_error=False,
    description="A token from NOTIFLOW_API_TOKENS or one made by `notiflow token create`.",
)


class Unauthorized(AppError):
    status_code = 401
    error_type = "unauthorized"
    headers = {"WWW-Authenticate": "Bearer"}


async def require_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    session: SessionDep,
    settings: SettingsDep,
) -> None:
    """Refuse the request unless it carries a valid bearer token.

    The look-up runs in the request's own session (``SessionDep`` is resolved once per request),
    so an authenticated request is one transaction, not two; a refusal rolls it back.
    """
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    valid = await service.is_valid(session, credentials.credentials, configured=settings.api_tokens)
    if not valid:
        raise Unauthorized("invalid bearer token")
