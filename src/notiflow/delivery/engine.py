"""The delivery engine of one process: scheduler + sender + webhook dispatcher (+ the daily
report when configured, + LISTEN on PostgreSQL).

``notiflow serve`` runs it beside the API; ``notiflow worker`` runs it alone. Any number of
engines may share one PostgreSQL database. Each of its loops survives any error of its own (with
back-off and a logged traceback) and is restarted should it ever end; ``health()`` says whether
each one completes its rounds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notiflow.config import Settings
from notiflow.core.clock import Clock, utcnow
from notiflow.db.session import subscribe
from notiflow.delivery.health import Loops, supervise
from notiflow.delivery.heartbeat import EngineState, Heartbeat
from notiflow.delivery.notify import listen, parse_halt
from notiflow.delivery.provider import ProviderClient
from notiflow.delivery.scheduler import Scheduler
from notiflow.delivery.sender import Sender
from notiflow.delivery.signal import EngineSignal
from notiflow.metrics.engine import EngineMetrics
from notiflow.webhooks import events as webhook_events
from notiflow.webhooks.dispatcher import Dispatcher
from notiflow.webhooks.subscriptions import Subscriptions

if TYPE_CHECKING:
    from notiflow.metrics import Metrics
    from notiflow.reports.loop import Reporter

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
        monotonic: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        # What this engine counts goes to its process's metrics (none given: to metrics of its
        # own that nobody reads).
        timeout = settings.provider_timeout
        self.metrics = (
            metrics.engine(provider_timeout=timeout)
            if metrics is not None
            else EngineMetrics.detached(provider_timeout=timeout)
        )
        self.signal = signal or EngineSignal()
        self.worker = worker_name(settings)
        self._sessionmaker = sessionmaker
        self.provider = ProviderClient(
            provider_url, provider_token, concurrency=settings.send_concurrency
        )
        self._stop = asyncio.Event()
        self._sender_wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.loops = Loops(stall_seconds=settings.engine_stall_seconds, monotonic=monotonic)
        self.scheduler = Scheduler(
            sessionmaker=sessionmaker,
            clock=clock,
            signal=self.signal,
            wake_sender=self._sender_wake.set,
            poll_seconds=settings.engine_poll_seconds,
            loops=self.loops,
        )
        # Who subscribes to which webhook event: the write-back writes message events only
        # while somebody does.
        self.subscriptions = Subscriptions(monotonic=monotonic)
        self.sender = Sender(
            settings=settings,
            sessionmaker=sessionmaker,
            clock=clock,
            provider=self.provider,
            worker=self.worker,
            wake=self._sender_wake,
            loops=self.loops,
            on_idle=self.scheduler.nudge,
            rng=rng,
            monotonic=monotonic,
            message_events=self.subscriptions.message_events,
            metrics=self.metrics,
        )
        self.signal.on_halt(self.sender.halt)
        self.webhooks = Dispatcher(
            settings=settings,
            sessionmaker=sessionmaker,
            clock=clock,
            worker=self.worker,
            loops=self.loops,
            subscriptions=self.subscriptions,
            rng=rng,
            monotonic=monotonic,
        )
        self.heartbeat = Heartbeat(
            worker=self.worker,
            sessionmaker=sessionmaker,
            clock=clock,
            monotonic=monotonic,
            loops=self.loops,
            seconds=settings.worker_heartbeat_seconds,
            state=self._state,
        )
        # The daily report (off, and not even a loop or an import, without NOTIFLOW_REPORT_TO).
        self.reporter: Reporter | None = None
        if settings.report_to:
            from notiflow.reports.loop import Reporter
            from notiflow.reports.sender import ReportSender

            self.reporter = Reporter(
                sender=ReportSender(
                    settings=settings, sessionmaker=sessionmaker, clock=clock, worker=self.worker
                ),
                clock=clock,
                loops=self.loops,
            )
        self._unsubscribe: list[Callable[[], None]] = []
        self.metrics.watch(self)

    async def start(self) -> None:
        # Commits in this process that queue webhook deliveries or change webhooks wake the
        # dispatcher at once.
        self._unsubscribe = [
            subscribe(self._sessionmaker, webhook_events.QUEUED, self.webhooks.wake),
            subscribe(self._sessionmaker, webhook_events.CHANGED, self.webhooks.changed),
        ]
        self._task = asyncio.create_task(self._run(), name=f"engine {self.worker}")

    async def _run(self) -> None:
        log.info(
            "engine started",
            extra={
                "worker": self.worker,
                "provider_url": self.provider.base_url,
                "concurrency": self.settings.send_concurrency,
            },
        )
        stop, loops = self._stop, self.loops
        parts = [
            supervise("scheduler", lambda: self.scheduler.run(stop), stop=stop, loops=loops),
            supervise("sender", lambda: self.sender.run(stop), stop=stop, loops=loops),
            supervise("webhooks", lambda: self.webhooks.run(stop), stop=stop, loops=loops),
        ]
        reporter = self.reporter
        if reporter is not None:
            parts.append(supervise("report", lambda: reporter.run(stop), stop=stop, loops=loops))
        if not self.settings.is_sqlite:  # LISTEN/NOTIFY wakes workers across processes
            parts.append(
                supervise(
                    "listen",
                    lambda: listen(self.settings.database_url, self._woken, stop),
                    stop=stop,
                    loops=loops,
                )
            )
        self.heartbeat.start()  # until the other loops have finished their work
        try:
            async with self.provider:
                await asyncio.gather(*parts)
        finally:
            for unsubscribe in self._unsubscribe:
                unsubscribe()
            await self.heartbeat.stop()  # marks this worker stopped
        log.info("engine stopped", extra={"worker": self.worker, "sent": self.sender.sent})

    def _woken(self, payload: str = "") -> None:
        halt = parse_halt(payload)
        if halt is not None:
            self.sender.halt(*halt)
        self.signal.notify()
        self._sender_wake.set()
        self.webhooks.changed()  # another process queued deliveries, or changed webhooks

    async def stop(self) -> None:
        """Graceful stop: finish or give back the messages in flight, then return."""
        self._stop.set()
        if self._task is not None:
            await self._task

    async def wait(self) -> None:
        if self._task is not None:
            await self._task

    def breaker_state(self) -> str:
        return self.sender.gate.breaker.state.value

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def problems(self) -> list[str]:
        """Why this engine is not doing its work, if it is not: empty when healthy."""
        if not self.running:
            return ["the delivery engine is not running"]
        return self.loops.problems()

    def _state(self) -> EngineState:
        """What this engine's heartbeat row says of it."""
        gate = self.sender.gate
        return EngineState(
            in_flight=self.sender.in_flight,
            sent=self.sender.sent,
            provider=gate.state,
            provider_error=gate.auth_error or (gate.last_error if gate.state != "ok" else None),
            error=self.loops.error(),
            problems=self.loops.problems(),
        )

    def health(self) -> dict[str, Any]:
        gate = self.sender.gate
        return {
            "running": self.running,
            "error": self.loops.error(),
            "problems": self.problems(),
            "worker": self.worker,
            "provider": gate.state,
            "provider_error": gate.auth_error or (gate.last_error if gate.state != "ok" else None),
            "in_flight": self.sender.in_flight,
            "sent": self.sender.sent,
        }
