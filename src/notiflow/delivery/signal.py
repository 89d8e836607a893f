"""Wake-ups from the API to the engine in the same process.

Services register ``notify`` (or ``halt``) to run after their transaction commits
(``db.session.on_commit``), so the engine never wakes before the change it is woken for is
visible. ``halt`` also tells the engine, before it looks at the database again, that it must
start no request for a mailing (paused, cancelled, deleted) or a client (opted out, deleted).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

HaltKind = Literal["mailing", "client"]
HaltListener = Callable[[HaltKind, int], None]


class EngineSignal:
    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._halt_listeners: list[HaltListener] = []

    def notify(self) -> None:
        self._event.set()

    def on_halt(self, listener: HaltListener) -> None:
        self._halt_listeners.append(listener)

    def halt(self, kind: HaltKind, ident: int) -> None:
        for listener in self._halt_listeners:
            listener(kind, ident)
        self.notify()

    async def wait(self, seconds: float) -> bool:
        """Wait until notified or ``seconds`` pass; return whether notified."""
        try:
            await asyncio.wait_for(self._event.wait(), seconds)
        except TimeoutError:
            return False
        finally:
            self._event.clear()
        return True
