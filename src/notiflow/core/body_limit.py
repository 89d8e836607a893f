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

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notiflow.config import Settings
from notiflow.core.errors import PayloadTooLarge

_REQUEST, _IMPORT = "NOTIFLOW_REQUEST_MAX_BYTES", "NOTIFLOW_IMPORT_MAX_BYTES"


def too_large(scope: Scope) -> JSONResponse:
    """The 413 for the limit FastAPI applied to this request, naming the setting that raises it."""
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
    return JSONResponse(error.body().model_dump(), status_code=error.status_code)


async def too_large_handler(request: Request, _exc: Exception) -> JSONResponse:
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
