"""Bearer-token authentication and role checks for /api/v1."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from notiflow.auth import service
from notiflow.auth.principal import Principal, configured_tokens
from notiflow.auth.roles import READ_METHODS, Role, default_role, required_role
from notiflow.core.errors import AppError, Forbidden
from notiflow.core.routes import route_info
from notiflow.deps import SessionDep, SettingsDep

log = logging.getLogger("notiflow.api")

_bearer = HTTPBearer(
    auto_error=False,
    description=(
        "A token from NOTIFLOW_API_TOKENS (role admin), NOTIFLOW_API_SEND_TOKENS (send), "
        "NOTIFLOW_API_READ_TOKENS (read), or one made by `notiflow token create --role …` or "
        "`POST /api/v1/tokens`. Roles: `read` may GET; `send` may also create, edit, import and "
        "control clients and mailings (POST, PUT, PATCH); `admin` may also DELETE and use "
        "/tokens, /webhooks and /audit. Each operation's description names the role it needs; "
        "a token whose role is too low gets 403."
    ),
)


class Unauthorized(AppError):
    status_code = 401
    error_type = "unauthorized"
    headers = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True, slots=True)
class Access:
    """An authenticated request: who, the role its route needs, and the route's template."""

    principal: Principal
    needs: Role
    route: str
    method: str

    @property
    def is_write(self) -> bool:
        """Whether the request may change something: any method but GET, HEAD and OPTIONS, on
        a route that needs more than ``read`` (a POST marked ``read`` only computes)."""
        return self.method not in READ_METHODS and self.needs is not Role.read


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    session: SessionDep,
    settings: SettingsDep,
) -> Access:
    """Refuse the request unless it carries a valid bearer token whose role allows its route.

    The look-up runs in the request's own session (``SessionDep`` is resolved once per request),
    so an authenticated request is one transaction, not two; a refusal rolls it back.
    """
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    principal = await service.authenticate(
        session, credentials.credentials, configured=configured_tokens(settings)
    )
    if principal is None:
        raise Unauthorized("invalid bearer token")
    method = request.method.upper()
    route = route_info(request)
    if route is not None:
        needs, template = required_role(route, method), route.path
    else:  # not a FastAPI route: cannot happen under /api/v1, but never let it through freely
        template = request.url.path
        needs = default_role(method, template)
    if not principal.role.allows(needs):
        log.info(
            "api request refused: role too low",
            extra={
                "actor": principal.name,
                "method": method,
                "route": template,
                "role": principal.role.value,
                "needs": needs.value,
            },
        )
        raise Forbidden(
            f"this token's role is {principal.role.value!r}; "
            f"{method} {request.url.path} needs {needs.value!r}"
        )
    access = Access(principal=principal, needs=needs, route=template, method=method)
    request.state.access = access
    return access


AccessDep = Annotated[Access, Depends(require_token)]
