"""The admin UI's sign-in through OpenID Connect: /ui/auth/oidc/login and /ui/auth/oidc/callback
(the rules and checks are in ``notiflow.admin.oidc``), and what the sign-in page and sign-out
need of it."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from notiflow.admin import access, oidc
from notiflow.admin.rendering import redirect, render
from notiflow.admin.session import UI_PREFIX, safe_next
from notiflow.auth.roles import Role
from notiflow.config import Settings
from notiflow.core.errors import NotFound
from notiflow.deps import SettingsDep

log = logging.getLogger("notiflow.ui")

router = APIRouter(prefix=f"{UI_PREFIX}/auth/oidc", include_in_schema=False)

CALLBACK = "oidc_callback"  # the callback's route name


def _provider(request: Request) -> oidc.Provider:
    provider: oidc.Provider | None = getattr(request.app.state, "oidc", None)
    if provider is None:
        raise NotFound("Sign-in through OpenID Connect is not set up here (NOTIFLOW_OIDC_ISSUER).")
    return provider


def _problem(request: Request, status_code: int, detail: str) -> HTMLResponse:
    return render(
        request,
        "oidc_problem.html",
        {"status_code": status_code, "detail": detail},
        status_code=status_code,
    )


@router.get("/login", name="oidc_login")
async def login(request: Request, next: str | None = None) -> Response:
    """To the provider's sign-in page, coming back to ``next`` (a page of the UI) after."""
    provider = _provider(request)
    request.session[oidc.NEXT] = safe_next(next)
    try:
        return await provider.login_redirect(request, str(request.url_for(CALLBACK)))
    except oidc.ProviderUnavailable as exc:
        return _problem(request, 503, str(exc))


@router.get("/callback", name=CALLBACK)
async def callback(request: Request, settings: SettingsDep) -> Response:
    """Where the provider sends the browser back: the checks, then a session."""
    provider = _provider(request)
    try:
        identity = await provider.identity(request)
    except oidc.ProviderUnavailable as exc:
        return _problem(request, 503, str(exc))
    except oidc.SignInRefused as exc:
        return _problem(request, exc.status_code, exc.detail)
    target = safe_next(request.session.get(oidc.NEXT))
    oidc.start_session(request.session, identity, Role(settings.oidc_role))
    access.csrf_token(request)  # a fresh one for the new session
    log.info("ui sign-in", extra={"actor": identity.email, "method": oidc.METHOD})
    return redirect(target)


def sign_in_context(request: Request, settings: Settings, next: str) -> dict[str, Any]:
    """What the sign-in page shows of OIDC: the button, and the provider's logout offered once
    after signing out."""
    if not oidc.enabled(settings):
        return {"oidc_host": None, "oidc_login": None, "oidc_logout": None}
    login_url = request.url_for("oidc_login").include_query_params(next=next)
    return {
        "oidc_host": oidc.issuer_host(settings),
        "oidc_login": f"{login_url.path}?{login_url.query}",
        "oidc_logout": request.session.pop(oidc.LOGOUT_URL, None),
    }


async def logout_offer(request: Request) -> str | None:
    """For an OIDC session being signed out: the provider's logout, when it has one."""
    provider: oidc.Provider | None = getattr(request.app.state, "oidc", None)
    id_token = request.session.get(oidc.ID_TOKEN)
    if provider is None or not oidc.signed_in(request.session) or not isinstance(id_token, str):
        return None
    return await provider.logout_url(id_token, str(request.url_for("sign_in_page")))


def offer_logout(request: Request, url: str) -> None:
    """Show the provider's logout on the next sign-in page (the session was just cleared)."""
    request.session[oidc.LOGOUT_URL] = url


def install(app: FastAPI, settings: Settings) -> None:
    """The OIDC routes; the provider's client when NOTIFLOW_OIDC_ISSUER is set."""
    app.state.oidc = oidc.Provider(settings) if oidc.enabled(settings) else None
    app.include_router(router)
