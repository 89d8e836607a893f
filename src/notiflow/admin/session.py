"""The admin UI's session: a signed cookie (Starlette's ``SessionMiddleware``) on /ui only.

The cookie is ``HttpOnly`` and ``SameSite=Lax``, ``Secure`` when the request came over https,
and holds the hash of the API token signed in with (never the token), so revoking the token ends
the session. Its key is NOTIFLOW_SESSION_SECRET, or one generated once and stored in the database
(``app_secrets``), so every process and every restart share it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from notiflow.admin import repository
from notiflow.config import Settings
from notiflow.core.clock import Clock
from notiflow.db.session import transaction

log = logging.getLogger("notiflow.ui")

UI_PREFIX = "/ui"
COOKIE = "notiflow_ui"
MAX_AGE_SECONDS = 12 * 3600
SESSION_KEY_NAME = "ui_session_key"


def safe_next(value: object) -> str:
    """Where to go after signing in: a path of the UI, never another site."""
    if (
        isinstance(value, str)
        and value.startswith(UI_PREFIX + "/")
        and not value.startswith("//")
        and "\\" not in value
    ):
        return value
    return UI_PREFIX + "/"


async def session_key(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, clock: Clock
) -> str:
    """NOTIFLOW_SESSION_SECRET, or the key stored in the database (made on first use)."""
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value()
    async with transaction(sessionmaker) as session:
        stored = await repository.get_secret(session, SESSION_KEY_NAME)
    if stored is not None:
        return stored
    try:
        async with transaction(sessionmaker) as session:
            await repository.add_secret(
                session, name=SESSION_KEY_NAME, value=secrets.token_urlsafe(48), at=clock()
            )
    except IntegrityError:
        pass  # another process made it first: use theirs
    async with transaction(sessionmaker) as session:
        stored = await repository.get_secret(session, SESSION_KEY_NAME)
    if stored is None:  # pragma: no cover - the row was just written
        raise RuntimeError("the UI's session key could not be stored")
    return stored


class UiSessions:
    """``SessionMiddleware`` for requests under /ui, built on the first of them (the key may
    come from the database); other requests pass through untouched."""

    def __init__(self, app: ASGIApp, *, load_key: Callable[[], Awaitable[str]]) -> None:
        self.app = app
        self._load_key = load_key
        self._lock = asyncio.Lock()
        self._plain: SessionMiddleware | None = None
        self._secure: SessionMiddleware | None = None

    def _make(self, key: str, *, secure: bool) -> SessionMiddleware:
        return SessionMiddleware(
            self.app,
            secret_key=key,
            session_cookie=COOKIE,
            max_age=MAX_AGE_SECONDS,
            path=UI_PREFIX,
            same_site="lax",
            https_only=secure,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (path == UI_PREFIX or path.startswith(UI_PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        if self._plain is None or self._secure is None:
            async with self._lock:
                if self._plain is None or self._secure is None:
                    try:
                        key = await self._load_key()
                    except (OperationalError, InterfaceError, OSError) as exc:
                        log.error("the UI's session key could not be read: %s", exc)
                        unavailable = PlainTextResponse(
                            "The database is unavailable right now; try again shortly.",
                            status_code=503,
                            headers={"Retry-After": "1"},
                        )
                        await unavailable(scope, receive, send)
                        return
                    self._secure = self._make(key, secure=True)
                    self._plain = self._make(key, secure=False)
        middleware = self._secure if scope.get("scheme") == "https" else self._plain
        await middleware(scope, receive, send)
