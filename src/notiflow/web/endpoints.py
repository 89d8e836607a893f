"""``/docs`` (Swagger UI), ``/redoc`` and ``/``: pages that load only what Notiflow serves.

FastAPI's own ``/docs`` and ``/redoc`` take their scripts from a CDN (and ReDoc its fonts from
Google), which leaves a blank page without internet access; these serve the same pages from the
vendored assets (``notiflow.web.static``). ``create_app`` turns FastAPI's off.

Their Content-Security-Policy keeps the browser from loading anything from elsewhere: ReDoc 2
shows the image ``https://cdn.redoc.ly/redoc/logo-mini.svg`` in its menu, with no option to turn
it off; the browser refuses it and ReDoc hides the broken image.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, RedirectResponse

from notiflow.web.static import vendored

DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
UI_PATH = "/ui/"

# Swagger UI's standalone layout shows a badge from validator.swagger.io (which is sent the
# document's URL) when the page is not on localhost; the base layout used here has none, and
# this keeps it so.
SWAGGER_UI_PARAMETERS: dict[str, Any] = {"validatorUrl": None}

# Only this server: the pages' own inline script and the styles their libraries inject, images
# they draw as data: URLs, ReDoc's search worker (a blob:), and calls to the API.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
    ]
)

router = APIRouter(include_in_schema=False)


def _self_contained(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


def _root(request: Request) -> str:
    root_path: str = request.scope.get("root_path", "")
    return root_path.rstrip("/")


@router.get("/", summary="The admin UI")
async def home(request: Request) -> RedirectResponse:
    """A person who opens Notiflow's address lands in the admin UI."""
    return RedirectResponse(_root(request) + UI_PATH)


@router.get(DOCS_PATH, summary="Swagger UI")
async def swagger_ui(request: Request) -> HTMLResponse:
    app = request.app
    root = _root(request)
    page = get_swagger_ui_html(
        openapi_url=root + app.openapi_url,
        title=f"{app.title} - Swagger UI",
        swagger_js_url=root + vendored("swagger-ui-dist", "swagger-ui-bundle.js"),
        swagger_css_url=root + vendored("swagger-ui-dist", "swagger-ui.css"),
        swagger_favicon_url=root + vendored("swagger-ui-dist", "favicon-32x32.png"),
        oauth2_redirect_url=root + OAUTH2_REDIRECT_PATH,
        init_oauth=app.swagger_ui_init_oauth,
        swagger_ui_parameters={**SWAGGER_UI_PARAMETERS, **(app.swagger_ui_parameters or {})},
    )
    return _self_contained(page)


@router.get(OAUTH2_REDIRECT_PATH, summary="Swagger UI's OAuth2 redirect")
async def swagger_ui_oauth2_redirect() -> HTMLResponse:
    return _self_contained(get_swagger_ui_oauth2_redirect_html())


@router.get(REDOC_PATH, summary="ReDoc")
async def redoc(request: Request) -> HTMLResponse:
    app = request.app
    root = _root(request)
    page = get_redoc_html(
        openapi_url=root + app.openapi_url,
        title=f"{app.title} - ReDoc",
        redoc_js_url=root + vendored("redoc", "redoc.standalone.js"),
        redoc_favicon_url=root + vendored("swagger-ui-dist", "favicon-32x32.png"),
        with_google_fonts=False,
    )
    return _self_contained(page)
