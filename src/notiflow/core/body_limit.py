"""The 413 of a request body over its limit, in the project's error shape.

FastAPI enforces the limits (``max_body_size``): NOTIFLOW_REQUEST_MAX_BYTES for the whole app,
NOTIFLOW_IMPORT_MAX_BYTES for the import's router (see ``create_app``). A body whose
Content-Length is over the limit is refused before a byte of it is read, whatever the token; a
chunked one as soon as it grows past the limit. No more than the limit is ever buffered.

FastAPI answers in two ways, both worded here by :func:`too_large`:

- a body that grows too large while it is read raises ``HTTPException(413)``, which
  :func:`too_large_handler` (installed by ``create_app``) turns into our shape;
- a Content-Length over the limit is answered by Starlette's limiter itself, with a plain-text
  ``Content Too Large`` that no exception handler sees. :class:`TooLargeAsJson`, wrapped around
  the whole application, replaces that one answer.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notiflow.config import Settings
from notiflow.core.errors import PayloadTooLarge

_REQUEST, _IMPORT = "NOTIFLOW_REQUEST_MAX_BYTES", "NOTIFLOW_IMPORT_MAX_BYTES"

ErrorPage = Callable[[Scope, int, str], Response | None]
"""``app.state.error_page``, when set: the answer for an error of a request of the pages for
people (the admin UI's HTML page), or None to answer in the API's JSON shape."""


def too_large(scope: Scope) -> Response:
    """The 413 for the limit FastAPI applied to this request, naming the setting that raises it
    (a page of the admin UI when the request was one of its forms)."""
    settings: Settings = scope["app"].state.settings
    limit = int(scope.get(MAX_BODY_SIZE_SCOPE_KEY, settings.request_max_bytes))
    if limit == settings.request_max_bytes == settings.import_max_bytes:
        variable = f"{_REQUEST} (for the import, {_IMPORT})"
    elif limit == settings.import_max_bytes:
        variable = _IMPORT
    else:
        variable = _REQUEST
    error = PayloadTooLarge(
        f"the request body is larger than {limit} bytes, the limit of this endpoint; "
        f"to accept larger bodies, raise {variable}"
    )
    error_page: ErrorPage | None = getattr(scope["app"].state, "error_page", None)
    page = error_page(scope, error.status_code, error.detail) if error_page else None
    if page is not None:
        return page
    return JSONResponse(error.body().model_dump(), status_code=error.status_code)


async def too_large_handler(request: Request, _exc: Exception) -> Response:
    """Exception handler for status 413: only FastAPI's body limit raises it as HTTPException."""
    return too_large(request.scope)


class TooLargeAsJson:
    """Rewrites the plain-text 413 that Starlette's body limiter sends by itself into our shape.

    It must wrap the whole application, outside the limiter (see ``create_app``); every other
    answer, the JSON 413s included, passes through untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def send_json(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and _is_plain_too_large(message):
                replaced = True
                await too_large(scope)(scope, receive, send)
            elif not replaced:
                await send(message)

        await self.app(scope, receive, send_json)


def _is_plain_too_large(start: Message) -> bool:
    content_type = Headers(raw=start.get("headers", [])).get("content-type", "")
    return bool(start["status"] == 413 and content_type.startswith("text/plain"))
