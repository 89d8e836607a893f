"""The UI's error pages: HTML under /ui, while the API keeps its JSON errors everywhere else."""

from __future__ import annotations

import inspect
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from notiflow.admin.access import SignInRequired
from notiflow.admin.rendering import flash, redirect, render
from notiflow.admin.session import UI_PREFIX
from notiflow.core.errors import AppError, ErrorBody

JSON_SUFFIX = ".json"  # the UI's routes fetched by its scripts (admin/charts.py)


class ActionRefused(Exception):
    """The service refused a UI action: back to ``location`` with its reason shown."""

    def __init__(self, detail: str, location: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.location = location


def _is_ui(request: Request) -> bool:
    return _is_ui_path(request.url.path)


def _is_ui_path(path: str) -> bool:
    """A page of the UI (its JSON routes, ``*.json``, answer errors as the API does)."""
    is_ui = path == UI_PREFIX or path.startswith(UI_PREFIX + "/")
    return is_ui and not path.endswith(JSON_SUFFIX)


def _page_outside_handlers(scope: Scope, status_code: int, detail: str) -> Response | None:
    """``app.state.error_page``: an error answered outside the exception handlers (a body over
    its limit, see ``notiflow.core.body_limit``) as a page under /ui."""
    if not _is_ui_path(scope.get("path", "")):
        return None
    return error_page(Request(scope), status_code, detail)


def error_page(request: Request, status_code: int, detail: str) -> HTMLResponse:
    return render(
        request,
        "error.html",
        {"status_code": status_code, "detail": detail},
        status_code=status_code,
    )


async def _delegate(handler: Any, request: Request, exc: Exception) -> Response:
    """Answer as the API's own handler would (it may be sync or async)."""
    answer = handler(request, exc)
    if inspect.isawaitable(answer):
        answer = await answer
    assert isinstance(answer, Response)
    return answer


def install_error_pages(app: FastAPI) -> None:
    """Wrap the API's handlers (``notiflow.core.errors``): under /ui they answer with a page."""
    api_app_error = app.exception_handlers[AppError]
    api_http_error = app.exception_handlers[StarletteHTTPException]
    api_validation_error = app.exception_handlers[RequestValidationError]

    async def on_sign_in_required(request: Request, _exc: Exception) -> Response:
        if request.url.path.endswith(JSON_SUFFIX):  # fetched by a page's script: no redirect
            body = ErrorBody(detail="Your UI session ended: sign in again.")
            return JSONResponse(body.model_dump(), status_code=401)
        target = f"{UI_PREFIX}/sign-in?" + urlencode({"next": request.url.path})
        if request.headers.get("HX-Request"):  # htmx: make the whole page go there
            return Response(status_code=204, headers={"HX-Redirect": target})
        return redirect(target)

    async def on_refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ActionRefused)
        flash(request, "error", exc.detail)
        return redirect(exc.location)

    async def on_app_error(request: Request, exc: Exception) -> Response:
        if not _is_ui(request):
            return await _delegate(api_app_error, request, exc)
        assert isinstance(exc, AppError)
        return error_page(request, exc.status_code, exc.body().detail)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        if not _is_ui(request):
            return await _delegate(api_http_error, request, exc)
        assert isinstance(exc, StarletteHTTPException)
        detail = "There is no such page." if exc.status_code == 404 else str(exc.detail)
        return error_page(request, exc.status_code, detail)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        if not _is_ui(request):
            return await _delegate(api_validation_error, request, exc)
        assert isinstance(exc, RequestValidationError)
        if any(error.get("loc", ("",))[0] == "path" for error in exc.errors()):
            return error_page(request, 404, "There is no such page.")
        return error_page(request, 422, "The address has a value this page cannot use.")

    app.state.error_page = _page_outside_handlers
    app.add_exception_handler(SignInRequired, on_sign_in_required)
    app.add_exception_handler(ActionRefused, on_refused)
    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
