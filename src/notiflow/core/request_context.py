"""The log context of an API request: its ``request_id`` and the ids in its path.

:class:`RequestContext` is a pure ASGI middleware around the whole application (a
``BaseHTTPMiddleware`` would run the endpoint in another task, out of the context bound here).
It takes the request id from the ``X-Request-ID`` header when it is sane (1 to 100 printable
ASCII characters, no spaces), else makes one, binds it for every line logged while the request is
served, and echoes it in the answer's ``X-Request-ID``. :func:`bind_path_ids`, a dependency of
every /api/v1 route, adds the ids of the route's path (``mailing_id``, ``client_id``, …) once the
route is known. Both are unbound when the request ends.
"""

from __future__ import annotations

import re
import uuid

import structlog
from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,100}$")
_MAX_ID_DIGITS = 19  # a BIGINT has at most 19 digits


def sane_request_id(value: str | None) -> str | None:
    """``value`` if it may serve as a request id, else None."""
    return value if value is not None and REQUEST_ID.match(value) else None


def _incoming(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == HEADER:
            return sane_request_id(value.decode("latin-1"))
    return None


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming(scope) or uuid.uuid4().hex
        echoed = (HEADER, request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ()) if h[0].lower() != HEADER]
                message = {**message, "headers": [*headers, echoed]}
            await send(message)

        scope.setdefault("state", {})["request_id"] = request_id
        outer = structlog.contextvars.get_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # Whatever the request bound (its path ids too) goes; an outer context stays.
            structlog.contextvars.clear_contextvars()
            if outer:
                structlog.contextvars.bind_contextvars(**outer)


async def bind_path_ids(request: Request) -> None:
    """Bind the ids of the request's path (``/mailings/{mailing_id}`` → ``mailing_id``) to its
    log context. Async, so that it runs in the request's own task and context."""
    ids = {
        name: int(value)
        for name, value in request.path_params.items()
        if name.endswith("_id")
        and isinstance(value, str | int)
        and str(value).isascii()
        and str(value).isdigit()
        and len(str(value)) <= _MAX_ID_DIGITS
    }
    if ids:
        structlog.contextvars.bind_contextvars(**ids)
