"""The heartbeat of an engine: its row in the workers table (``GET /api/v1/workers``).

At start and then every ``NOTIFLOW_WORKER_HEARTBEAT_SECONDS`` the engine writes one row with one
UPSERT — its name, host, pid, version, when it started, when it beat last, and what its
``/health`` would say: requests in flight, messages sent, the provider's state, failing or
stalled loops. A graceful stop marks the row stopped; a worker that dies just stops beating, and
the API counts it dead a minute after its last beat. Once an hour a beat also deletes the rows
not seen for a day, so the table stays small however often workers restart.

This is not the leases' heartbeat (``delivery.leases``), which keeps the messages a worker holds:
losing this one costs nothing but the truth of the list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notiflow import __version__
from notiflow.core.clock import Clock
from notiflow.db.session import transaction
from notiflow.delivery.health import Loops, describe, pause, supervise
from notiflow.workers import repository

log = logging.getLogger("notiflow.engine")

LOOP = "heartbeat"
FORGET_AFTER = timedelta(days=1)  # rows whose last beat is older are deleted
CLEANUP_EVERY_SECONDS = 3600.0
STOP_TIMEOUT_SECONDS = 5.0  # the last write, marking the row stopped, waits at most this
_TEXT_MAX = 500
_PROBLEMS_MAX = 10


@dataclass(frozen=True, slots=True)
class EngineState:
    """What a beat tells of the engine besides its identity."""

    in_flight: int = 0
    sent: int = 0
    provider: str = "ok"
    provider_error: str | None = None
    error: str | None = None
    problems: list[str] = field(default_factory=list)


def _clip(text: str | None) -> str | None:
    return None if text is None else text[:_TEXT_MAX]


class Heartbeat:
    def __init__(
        self,
        *,
        worker: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        monotonic: Callable[[], float],
        loops: Loops,
        seconds: float,
        state: Callable[[], EngineState],
    ) -> None:
        self._worker = worker
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._monotonic = monotonic
        self._loops = loops
        self.seconds = seconds
        self._state = state
        self._host = socket.gethostname()[:255]
        self._pid = os.getpid()
        self.started_at: datetime | None = None
        self._cleanup_due: float | None = None  # monotonic; None: at the first beat
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        loops.register(LOOP, period=seconds)

    def _row(self, now: datetime, *, stopped: bool) -> dict[str, Any]:
        state = self._state()
        return {
            "name": self._worker,
            "host": self._host,
            "pid": self._pid,
            "version": __version__,
            "started_at": self.started_at or now,
            "last_beat_at": now,
            "stopped_at": now if stopped else None,
            "in_flight": 0 if stopped else state.in_flight,
            "sent": state.sent,
            "provider": state.provider,
            "provider_error": _clip(state.provider_error),
            "error": _clip(state.error),
            "problems": [p[:_TEXT_MAX] for p in state.problems[:_PROBLEMS_MAX]],
        }

    async def beat(self, *, stopped: bool = False) -> None:
        """Write this engine's row (and, when due, forget the workers gone for a day)."""
        now = self._clock()
        if self.started_at is None:
            self.started_at = now
        cleanup = not stopped and (
            self._cleanup_due is None or self._monotonic() >= self._cleanup_due
        )
        forgotten = 0
        async with transaction(self._sessionmaker) as session:
            await repository.beat(session, self._row(now, stopped=stopped))
            if cleanup:
                forgotten = await repository.delete_unseen(session, before=now - FORGET_AFTER)
        if cleanup:
            self._cleanup_due = self._monotonic() + CLEANUP_EVERY_SECONDS
            if forgotten:
                log.info("forgot workers not seen for a day", extra={"count": forgotten})

    async def run(self, stop: asyncio.Event) -> None:
        """Beat at once, then every ``seconds``, until ``stop``."""
        while not stop.is_set():
            try:
                await self.beat()
            except Exception as exc:  # retried with back-off; the engine never stops for it
                await pause(stop, self._loops.failed(LOOP, exc))
                continue
            self._loops.done(LOOP)
            await pause(stop, self.seconds)

    def start(self) -> None:
        """Beat from now on, in a supervised task of its own (it outlives the engine's other
        loops, so that a worker draining its work for a while still shows up alive)."""
        self._stop.clear()
        self._task = asyncio.create_task(
            supervise(LOOP, lambda: self.run(self._stop), stop=self._stop, loops=self._loops),
            name=f"heartbeat {self._worker}",
        )

    async def stop(self) -> None:
        """Stop beating and mark the row stopped, within twice :data:`STOP_TIMEOUT_SECONDS`
        (a beat under way that hangs is cancelled); never raises."""
        self._stop.set()
        if self._task is not None:
            task, self._task = self._task, None
            _, pending = await asyncio.wait({task}, timeout=STOP_TIMEOUT_SECONDS)
            if pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            await asyncio.wait_for(self.beat(stopped=True), STOP_TIMEOUT_SECONDS)
        except Exception as exc:  # the stop goes on: the row just ages out of the live list
            log.warning(
                "could not mark the worker stopped in the workers table",
                extra={"worker": self._worker, "error": describe(exc)},
            )
