"""The delivery engine of one process: scheduler + sender (+ LISTEN on PostgreSQL).

``notiflow serve`` runs it beside the API; ``notiflow worker`` runs it alone. Any number of
engines may share one PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notiflow.config import Settings
from notiflow.core.clock import Clock, utcnow
from notiflow.delivery.notify import listen
from notiflow.delivery.provider import ProviderClient
from notiflow.delivery.scheduler import Scheduler
from notiflow.delivery.sender import Sender
from notiflow.delivery.signal import EngineSignal

log = logging.getLogger("notiflow.engine")


def worker_name(settings: Settings) -> str:
    base = settings.worker_name or f"{socket.gethostname()[:20]}-{os.getpid()}"
    return f"{base}-{uuid.uuid4().hex[:6]}"


class Engine:
    def __init__(
        self,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        provider_url: str,
        provider_token: str,
        signal: EngineSignal | None = None,
        clock: Clock = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.signal = signal or EngineSignal()
        self.worker = worker_name(settings)
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._rng = rng
        self.provider = ProviderClient(
            provider_url, provider_token, concurrency=settings.send_concurrency
        )
        self._stop = asyncio.Event()
        self._sender_wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sender: Sender | None = None
        self.scheduler = Scheduler(
            sessionmaker=sessionmaker,
            clock=clock,
            signal=self.signal,
            wake_sender=self._sender_wake.set,
            poll_seconds=settings.engine_poll_seconds,
        )

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"engine {self.worker}")

    async def _run(self) -> None:
        log.info(
            "engine started worker=%s provider=%s concurrency=%s",
            self.worker,
            self.provider.base_url,
            self.settings.send_concurrency,
        )
        async with self.provider:
            self.sender = Sender(
                settings=self.settings,
                sessionmaker=self._sessionmaker,
                clock=self._clock,
                provider=self.provider,
                worker=self.worker,
                wake=self._sender_wake,
                on_idle=self.scheduler.nudge,
                rng=self._rng,
            )
            tasks = [
                asyncio.create_task(self.scheduler.run(self._stop), name="scheduler"),
                asyncio.create_task(self.sender.run(self._stop), name="sender"),
                asyncio.create_task(
                    listen(self.settings.database_url, self._woken, self._stop), name="listen"
                ),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    if not task.cancelled() and task.exception() is not None:
                        log.critical(
                            "engine part %s crashed", task.get_name(), exc_info=task.exception()
                        )
            finally:
                self._stop.set()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
        sent = self.sender.status.sent if self.sender is not None else 0
        log.info("engine stopped worker=%s sent=%s", self.worker, sent)

    def _woken(self) -> None:
        self.signal.notify()
        self._sender_wake.set()

    async def stop(self) -> None:
        """Graceful stop: finish or give back the messages in flight, then return."""
        self._stop.set()
        if self._task is not None:
            await self._task

    async def wait(self) -> None:
        if self._task is not None:
            await self._task

    def breaker_state(self) -> str:
        return self.sender.breaker.state.value if self.sender is not None else "closed"

    def health(self) -> dict[str, Any]:
        if self.sender is None:
            return {
                "running": self._task is not None and not self._task.done(),
                "provider": "starting",
            }
        status = self.sender.status
        return {
            "running": self._task is not None and not self._task.done(),
            "error": self.scheduler.error or status.engine_error,
            "worker": self.worker,
            "provider": status.provider,
            "provider_error": status.auth_error
            or (status.last_error if status.provider != "ok" else None),
            "in_flight": status.in_flight,
            "sent": status.sent,
        }
