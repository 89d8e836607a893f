"""The scheduler: starts mailings on time, writes their audiences, reclaims leases of dead
workers, expires what passed its end time and completes finished mailings.

It sleeps until the nearest thing it must do (a start time, an end time, a lease expiry), or
until woken by a change, and never longer than ``engine_poll_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notiflow.core.clock import Clock
from notiflow.db.session import transaction
from notiflow.delivery.health import Loops
from notiflow.delivery.queue import claims, scheduling
from notiflow.delivery.signal import EngineSignal

log = logging.getLogger("notiflow.engine")


class Scheduler:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        signal: EngineSignal,
        wake_sender: Callable[[], None],
        poll_seconds: float,
        loops: Loops,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._signal = signal
        self._wake_sender = wake_sender
        self._poll = poll_seconds
        self._loops = loops
        self._nudged = asyncio.Event()
        loops.register("scheduler", period=poll_seconds)

    def nudge(self) -> None:
        """Look again now (the sender went idle: a mailing may have just finished). Unlike a
        change signal, this does not wake the sender in turn."""
        self._nudged.set()

    async def tick(self) -> datetime | None:
        """Do everything that is due now; return when something is next due."""
        now = self._clock()
        async with transaction(self._sessionmaker) as session:
            started = await scheduling.start_due(session, now)
            pending = await scheduling.unmaterialised(session)
        for mailing_id in started:
            log.info("mailing started mailing_id=%s", mailing_id)
        woke = bool(started)
        for mailing_id in pending:
            began = time.perf_counter()
            async with transaction(self._sessionmaker) as session:
                written = await scheduling.materialise(session, mailing_id, now)
            if written is not None:
                woke = True
                log.info(
                    "audience written mailing_id=%s messages=%s seconds=%.2f",
                    mailing_id,
                    written,
                    time.perf_counter() - began,
                )
        if woke:
            self._wake_sender()
        async with transaction(self._sessionmaker) as session:
            reclaimed = await claims.reclaim_expired_leases(session, now)
        if reclaimed:
            log.warning("reclaimed messages of a stopped worker count=%s", reclaimed)
            self._wake_sender()
        async with transaction(self._sessionmaker) as session:
            expired = await scheduling.expire_ended(session, now)
        if expired:
            log.info("expired messages past end_time count=%s", expired)
        async with transaction(self._sessionmaker) as session:
            completed = await scheduling.complete_finished(session, now)
        for mailing_id in completed:
            log.info("mailing completed mailing_id=%s", mailing_id)
        async with transaction(self._sessionmaker) as session:
            candidates = [
                await scheduling.next_start(session),
                await scheduling.next_end(session),
                await claims.next_lease_expiry(session),
            ]
        due = [c for c in candidates if c is not None]
        return min(due) if due else None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                next_due = await self.tick()
            except Exception as exc:  # any error: retried with back-off, never the end
                await self._sleep(stop, self._loops.failed("scheduler", exc))
                continue
            self._loops.done("scheduler")
            wait = self._poll
            if next_due is not None:
                wait = min(wait, max(0.0, (next_due - self._clock()).total_seconds()))
            if wait > 0:
                await self._sleep(stop, wait)

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        """Sleep, waking early for a change signal (which also wakes the sender), a nudge from
        the sender, or a stop."""
        stopper = asyncio.ensure_future(stop.wait())
        waiter = asyncio.ensure_future(self._signal.wait(seconds))
        nudged = asyncio.ensure_future(self._nudged.wait())
        try:
            done, _ = await asyncio.wait(
                {stopper, waiter, nudged}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
            if waiter in done and waiter.result():
                self._wake_sender()
        finally:
            self._nudged.clear()
            for task in (stopper, waiter, nudged):
                task.cancel()
