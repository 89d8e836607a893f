"""Rendering the UI's pages: the templates, with what every page needs (who is signed in, the
CSRF token, the message of the last action)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from notiflow.admin import access
from notiflow.admin.session import UI_PREFIX
from notiflow.web.static import vendored

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
HTMX_JS = vendored("htmx.org", "htmx.min.js")  # listed in static/vendor/vendor.toml


def flash(request: Request, kind: str, text: str) -> None:
    """A message for the next page this session sees (``kind``: ok or error)."""
    request.session["flash"] = [kind, text]


def render(
    request: Request, name: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    has_session = "session" in request.scope
    # A fragment htmx polls for never shows the message: it stays for the next whole page (a
    # poll landing between an action and the page it redirects to must not swallow it).
    fragment = "hx-request" in request.headers
    return templates.TemplateResponse(
        request,
        name,
        {
            "principal": getattr(request.state, "principal", None),
            "csrf_token": access.csrf_token(request) if has_session else "",
            "csrf_field": access.CSRF_FIELD,
            "flash": request.session.pop("flash", None) if has_session and not fragment else None,
            "ui": UI_PREFIX,
            "htmx_js": request.scope.get("root_path", "").rstrip("/") + HTMX_JS,
            **context,
        },
        status_code=status_code,
    )


def redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=status.HTTP_303_SEE_OTHER)
