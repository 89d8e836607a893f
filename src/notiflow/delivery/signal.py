"""A wake-up signal from the API to the engine in the same process.

Services register ``notify`` to run after their transaction commits (``db.session.on_commit``),
so the engine never wakes before the change it is woken for is visible.
"""

from __future__ import annotations

import asyncio


class EngineSignal:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> bool:
        """Wait until notified or ``seconds`` pass; return whether notified."""
        try:
            await asyncio.wait_for(self._event.wait(), seconds)
        except TimeoutError:
            return False
        finally:
            self._event.clear()
        return True
