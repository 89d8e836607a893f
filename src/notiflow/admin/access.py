"""Who is signed in to the UI, what their role lets them do, CSRF, and the audit of UI writes.

Every action of the UI stands for an /api/v1 route (``Action``): the role it needs is that
route's, from ``notiflow.auth.roles.required_role``, and its audit entry is the one the API would
write for it (``notiflow.audit.recorder.write_entry``) — the rules live there, once.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.admin import oidc
from notiflow.audit.recorder import write_entry
from notiflow.auth import service as auth
from notiflow.auth.dependencies import Access
from notiflow.auth.principal import Principal, configured_tokens
from notiflow.auth.roles import READ_METHODS, Role, required_role
from notiflow.config import Settings
from notiflow.core.clock import Clock
from notiflow.core.errors import AppError, Forbidden
from notiflow.core.routes import API_PREFIX, RouteInfo, api_routes
from notiflow.deps import SessionDep, SettingsDep

TOKEN_HASH = "token_hash"  # session key: the hash of the API token signed in with
CSRF = "csrf"  # session key: this session's CSRF token
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


class SignInRequired(Exception):
    """No valid session: the handler sends the browser to the sign-in page."""


class CsrfRefused(AppError):
    status_code = 403
    error_type = "csrf"


@dataclass(frozen=True, slots=True)
class Action:
    """A UI action and the /api/v1 route it stands for."""

    method: str
    route: str  # the API template, e.g. /api/v1/mailings/{mailing_id}/pause


MAILING = f"{API_PREFIX}/mailings/{{mailing_id}}"
START = Action("POST", f"{MAILING}/start")
PAUSE = Action("POST", f"{MAILING}/pause")
RESUME = Action("POST", f"{MAILING}/resume")
CANCEL = Action("POST", f"{MAILING}/cancel")
DELETE = Action("DELETE", MAILING)
CREATE = Action("POST", f"{API_PREFIX}/mailings")
EDIT = Action("PUT", MAILING)
MAILING_ACTIONS = {"start": START, "pause": PAUSE, "resume": RESUME, "cancel": CANCEL}
PREVIEW = Action("POST", f"{API_PREFIX}/mailings/preview")  # a read: it writes nothing
WORKERS = Action("GET", f"{API_PREFIX}/workers")
TOKENS = Action("GET", f"{API_PREFIX}/tokens")
TOKEN_CREATE = Action("POST", f"{API_PREFIX}/tokens")
TOKEN_REVOKE = Action("DELETE", f"{API_PREFIX}/tokens/{{token_id}}")

CLIENTS = f"{API_PREFIX}/clients"
CLIENT = f"{CLIENTS}/{{client_id}}"
CLIENT_CREATE = Action("POST", CLIENTS)
CLIENT_EDIT = Action("PUT", CLIENT)
CLIENT_DELETE = Action("DELETE", CLIENT)
CLIENT_OPT_OUT = Action("POST", f"{CLIENT}/opt-out")
CLIENT_OPT_IN = Action("POST", f"{CLIENT}/opt-in")
CLIENT_IMPORT = Action("POST", f"{CLIENTS}/import")


def _route(request: Request, action: Action) -> RouteInfo:
    for _api_route, info in api_routes(request.app.router.routes):
        if info.path == action.route and action.method in info.methods:
            return info
    raise LookupError(f"no API route {action.method} {action.route}")


def needs(request: Request, action: Action) -> Role:
    """The role ``action`` needs: its API route's."""
    return required_role(_route(request, action), action.method)


def allowed(request: Request, principal: Principal, action: Action) -> bool:
    return principal.role.allows(needs(request, action))


def access_for(request: Request, principal: Principal, action: Action) -> Access:
    """The access ``principal`` has to ``action``, as ``require_token`` would grant it; 403 when
    the role is too low."""
    role = needs(request, action)
    if not principal.role.allows(role):
        raise Forbidden(f"Your role is {principal.role.value}; this needs {role.value}.")
    return Access(principal=principal, needs=role, route=action.route, method=action.method)


async def record(
    session: AsyncSession,
    *,
    access: Access,
    clock: Clock,
    params: dict[str, object],
    inserted: list[Any] | None = None,
) -> None:
    """The audit entry of a UI write, in the request's transaction, as the API would write it
    (``inserted``: what ``notiflow.audit.recorder.track_inserts`` saw, for a create)."""
    await write_entry(
        session,
        access=access,
        at=clock(),
        path_params=params,
        inserted=inserted,
        # A person signed in through OIDC: the actor is their email, the method says so.
        extra={
            "via": "ui",
            **({"method": access.principal.method} if access.principal.method else {}),
        },
    )


async def principal_of(
    request: Request, session: AsyncSession, settings: Settings
) -> Principal | None:
    if oidc.signed_in(request.session):  # the session says which kind it is
        return oidc.principal_of(request.session, settings)
    token_hash = request.session.get(TOKEN_HASH)
    if not isinstance(token_hash, str):
        return None
    principal = await auth.authenticate_hash(
        session, token_hash, configured=configured_tokens(settings)
    )
    if principal is None:  # the token was revoked: the session ends with it
        request.session.pop(TOKEN_HASH, None)
    return principal


async def require_principal(
    request: Request, session: SessionDep, settings: SettingsDep
) -> Principal:
    principal = await principal_of(request, session, settings)
    if principal is None:
        raise SignInRequired
    request.state.principal = principal
    return principal


def sign_in(request: Request, token_hash: str) -> None:
    """Start a session for the token of this hash, with a fresh CSRF token."""
    request.session.clear()
    request.session[TOKEN_HASH] = token_hash
    request.session[CSRF] = secrets.token_urlsafe(32)


def sign_out(request: Request) -> None:
    request.session.clear()


def csrf_token(request: Request) -> str:
    """This session's CSRF token, made on first use (the sign-in form needs one too)."""
    token = request.session.get(CSRF)
    if not isinstance(token, str):
        token = request.session[CSRF] = secrets.token_urlsafe(32)
    return token


async def check_csrf(request: Request) -> None:
    """Refuse an unsafe request that does not carry this session's CSRF token, in the form
    field ``csrf_token`` or the ``X-CSRF-Token`` header (htmx sends it)."""
    if request.method in READ_METHODS:
        return
    expected = request.session.get(CSRF)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if (
        not isinstance(expected, str)
        or sent is None
        or not hmac.compare_digest(expected.encode(), sent.encode())
    ):
        raise CsrfRefused("the form expired or did not come from this site: reload the page")


UiPrincipal = Annotated[Principal, Depends(require_principal)]
