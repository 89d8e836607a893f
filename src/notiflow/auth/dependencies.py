from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from notiflow.auth import service
from notiflow.core.errors import AppError
from notiflow.db.session import transaction

_bearer = HTTPBearer(
    auto_error=False,
    description="A token from NOTIFLOW_API_TOKENS or one made by `notiflow token create`.",
)


class Unauthorized(AppError):
    status_code = 401
    error_type = "unauthorized"
    headers = {"WWW-Authenticate": "Bearer"}


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    settings = request.app.state.settings
    async with transaction(request.app.state.sessionmaker) as session:
        valid = await service.is_valid(
            session, credentials.credentials, configured=settings.api_tokens
        )
    if not valid:
        raise Unauthorized("invalid bearer token")
