"""Which events some active webhook subscribes to, as the engine knows it.

The engine's write-back asks this at every batch (``message_events``), so it never looks at the
database for it: the dispatcher refreshes it every ``REFRESH_SECONDS``, and at once when it is
told the webhooks changed (a commit of the webhooks API in this process, a NOTIFY on
PostgreSQL). While it says nobody subscribes to a message event, the write-back runs exactly as
it would without webhooks.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.webhooks import repository
from notiflow.webhooks.events import MESSAGE_EVENTS

REFRESH_SECONDS = 5.0


class Subscriptions:
    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self.events: frozenset[str] = frozenset()
        self._messages: frozenset[str] = frozenset()
        self._refreshed = float("-inf")
        self._changed = True

    def message_events(self) -> frozenset[str]:
        """The message events (``message.sent``, ``message.failed``) someone subscribes to."""
        return self._messages

    def changed(self) -> None:
        """The webhooks changed: look again at the next chance."""
        self._changed = True

    @property
    def due(self) -> bool:
        return self._changed or self._monotonic() - self._refreshed >= REFRESH_SECONDS

    async def refresh(self, session: AsyncSession) -> None:
        self._changed = False
        began = self._monotonic()
        try:
            events = frozenset(await repository.subscribed_events(session))
        except BaseException:
            self._changed = True
            raise
        self.events = events
        self._messages = events & MESSAGE_EVENTS
        self._refreshed = began
