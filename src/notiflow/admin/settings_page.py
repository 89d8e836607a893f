"""The Settings page (/ui/settings): this process's provider and engine settings (secrets only as
"set" or "not set"), every known worker, and for admins the API tokens: list, create (the new
token is shown once, in the answer to the form, and never stored anywhere else) and revoke.

The tokens are the /api/v1/tokens service's, with its role (admin) and its audit entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import Enum
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Path, Request, status
from fastapi.responses import HTMLResponse, Response
from pydantic import SecretStr, ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.admin import access
from notiflow.admin.access import UiPrincipal
from notiflow.admin.errors import ActionRefused
from notiflow.admin.rendering import flash, redirect, render
from notiflow.admin.session import UI_PREFIX
from notiflow.audit.recorder import track_inserts
from notiflow.auth import service as auth
from notiflow.auth.principal import Principal, configured_tokens
from notiflow.auth.roles import ROLE_DESCRIPTIONS, Role
from notiflow.auth.schemas import TokenCreate
from notiflow.config import Settings
from notiflow.core.errors import NotFound, validation_body
from notiflow.deps import ClockDep, SessionDep, SettingsDep
from notiflow.workers import service as workers

router = APIRouter(
    prefix="/settings",
    dependencies=[Depends(access.require_principal), Depends(access.check_csrf)],
)

HERE = f"{UI_PREFIX}/settings"
WORKERS_SHOWN = 100
TokenId = Annotated[int, Path(ge=1, le=2**63 - 1)]

# The settings shown, by group: names of ``Settings`` fields, each shown as its NOTIFLOW_ variable
# with its value and its description.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Provider", ("provider_url", "provider_token", "provider_timeout")),
    (
        "Delivery engine",
        (
            "send_concurrency",
            "send_rate",
            "send_max_attempts",
            "send_batch_size",
            "send_lease_seconds",
            "retry_base_seconds",
            "retry_max_seconds",
            "auth_retry_seconds",
            "breaker_failure_ratio",
            "breaker_window",
            "breaker_min_requests",
            "breaker_cooldown_seconds",
            "auto_pause_failure_ratio",
            "auto_pause_window",
            "engine_poll_seconds",
            "engine_stall_seconds",
            "worker_heartbeat_seconds",
        ),
    ),
    (
        "Webhooks",
        (
            "webhook_timeout_seconds",
            "webhook_max_attempts",
            "webhook_retry_base_seconds",
            "webhook_retry_max_seconds",
            "webhook_concurrency",
        ),
    ),
    (
        "Daily report",
        (
            "report_to",
            "report_from",
            "report_timezone",
            "report_time",
            "report_max_late",
            "smtp_url",
            "smtp_timeout",
        ),
    ),
    (
        "Sign-in through OpenID Connect",
        (
            "oidc_issuer",
            "oidc_client_id",
            "oidc_client_secret",
            "oidc_allowed_emails",
            "oidc_allowed_domains",
            "oidc_role",
            "oidc_scopes",
        ),
    ),
    (
        "This process",
        (
            "database_url",
            "default_timezone",
            "request_max_bytes",
            "import_max_bytes",
            "log_level",
            "log_format",
            "metrics_token",
            "session_secret",
        ),
    ),
)
# Shown only as set or not set, never their values, not even in part.
SECRETS = frozenset(
    {"provider_token", "metrics_token", "session_secret", "smtp_url", "oidc_client_secret"}
)
_UNSET = {
    "smtp_url": "not set: no daily report is sent",
    "provider_token": "not set: no Authorization header is sent",
    "metrics_token": "not set: /metrics needs no token",
    "session_secret": "not set: a key generated once and stored in the database",
}
# Where each role's configured tokens come from.
_CONFIGURED_IN = {
    Role.admin: "NOTIFLOW_API_TOKENS",
    Role.send: "NOTIFLOW_API_SEND_TOKENS",
    Role.read: "NOTIFLOW_API_READ_TOKENS",
}


@dataclass(frozen=True, slots=True)
class SettingRow:
    variable: str
    value: str
    description: str


def _without_credentials(url: str) -> str:
    """A URL with its password and query values left out (either may carry a key)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rsplit('@', 1)[1]}"
    return urlunsplit((parts.scheme, netloc, parts.path, "…" if parts.query else "", ""))


def _shown(name: str, value: Any) -> str:
    if name in SECRETS:
        is_set = value.get_secret_value() if isinstance(value, SecretStr) else value
        return "set" if is_set else _UNSET.get(name, "not set")
    if name == "provider_url":
        return _without_credentials(value) if value else "built-in sandbox"
    if value is None or value == []:
        return "not set"
    if name == "database_url":
        return make_url(value).render_as_string(hide_password=True)
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def setting_rows(settings: Settings) -> list[tuple[str, list[SettingRow]]]:
    """The settings shown, by group, with what the README says of each."""
    fields = type(settings).model_fields
    return [
        (
            group,
            [
                SettingRow(
                    variable=f"NOTIFLOW_{name.upper()}",
                    value=_shown(name, getattr(settings, name)),
                    description=fields[name].description or "",
                )
                for name in names
            ],
        )
        for group, names in GROUPS
    ]


@dataclass(frozen=True, slots=True)
class TokenRow:
    name: str
    role: str
    created_at: datetime | None
    token_id: int | None  # stored tokens only: those may be revoked here
    configured_in: str | None  # the variable of a configured token


@dataclass
class TokenForm:
    """The create-a-token form: checked by the API's ``TokenCreate``, errors by field."""

    values: dict[str, str] = field(default_factory=lambda: {"name": "", "role": Role.read.value})
    errors: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, form: Mapping[str, Any]) -> TokenForm:
        return cls({name: str(form.get(name) or "") for name in ("name", "role")})

    def validate(self) -> TokenCreate | None:
        try:
            return TokenCreate.model_validate(self.values)
        except ValidationError as exc:
            for error in validation_body(exc.errors()).errors:
                name = error.field if error.field in self.values else ""
                self.errors.setdefault(name, []).append(error.message)
            return None


async def _token_rows(session: AsyncSession, settings: Settings) -> list[TokenRow]:
    stored = [
        TokenRow(t.name, t.role, t.created_at, token_id=t.id, configured_in=None)
        for t in await auth.list_all(session)
    ]
    configured = [
        TokenRow(
            c.principal.name,
            c.principal.role.value,
            None,
            token_id=None,
            configured_in=_CONFIGURED_IN[c.principal.role],
        )
        for c in configured_tokens(settings)
    ]
    return configured + stored


async def _page(
    request: Request,
    principal: Principal,
    session: AsyncSession,
    settings: Settings,
    now: datetime,
    *,
    form: TokenForm | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    known, total = await workers.list_page(
        session, now=now, include_all=True, limit=WORKERS_SHOWN, offset=0
    )
    can_manage = access.allowed(request, principal, access.TOKENS)
    engine = request.app.state.engine
    return render(
        request,
        "settings.html",
        {
            "active": "settings",
            "groups": setting_rows(settings),
            "engine": engine.health() if engine is not None else None,
            "workers": [(w, workers.is_alive(w, now)) for w in known],
            "workers_total": total,
            "can_manage": can_manage,
            "tokens": await _token_rows(session, settings) if can_manage else [],
            "form": form or TokenForm(),
            "roles": [(role.value, ROLE_DESCRIPTIONS[role]) for role in Role],
        },
        status_code=status_code,
    )


@router.get("")
async def settings_page(
    request: Request,
    principal: UiPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> HTMLResponse:
    access.access_for(request, principal, access.WORKERS)
    return await _page(request, principal, session, settings, clock())


@router.post("/tokens")
async def create_token(
    request: Request,
    principal: UiPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> Response:
    """POST /api/v1/tokens from a form. The answer is the only place the token is ever shown:
    not in the session, not in a URL, and not kept by any cache (``no-store``)."""
    granted = access.access_for(request, principal, access.TOKEN_CREATE)
    form = TokenForm.parse(await request.form())
    data = form.validate()
    if data is None:
        return await _page(
            request,
            principal,
            session,
            settings,
            clock(),
            form=form,
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    inserted = track_inserts(session)
    token, plain = await auth.create(session, name=data.name, role=data.role)
    await access.record(session, access=granted, clock=clock, params={}, inserted=inserted)
    response = render(
        request,
        "token_created.html",
        {"active": "settings", "token": token, "plain": plain},
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(
    request: Request,
    principal: UiPrincipal,
    token_id: TokenId,
    session: SessionDep,
    clock: ClockDep,
) -> Response:
    """DELETE /api/v1/tokens/{id}: requests and UI sessions with it are refused from now on."""
    granted = access.access_for(request, principal, access.TOKEN_REVOKE)
    try:
        await auth.delete(session, token_id)
    except NotFound as exc:
        raise ActionRefused(
            f"Token {token_id} does not exist (revoked already?).", f"{HERE}#tokens"
        ) from exc
    await access.record(session, access=granted, clock=clock, params={"token_id": token_id})
    if principal.token_id == token_id:
        flash(request, "ok", "Your own token was revoked: sign in with another one.")
    else:
        flash(request, "ok", f"Token {token_id} was revoked.")
    return redirect(f"{HERE}#tokens")
