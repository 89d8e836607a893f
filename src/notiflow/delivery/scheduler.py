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
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notiflow.core.clock import Clock
from notiflow.db.session import transaction
from notiflow.delivery.health import Loops
from notiflow.delivery.queue import claims, scheduling
from notiflow.delivery.signal import EngineSignal
from notiflow.models import FINAL_STATUSES, MessageStatus
from notiflow.stats import repository as stats

log = logging.getLogger("notiflow.engine")

# The final statuses, in the order a completed mailing's line gives their counts.
FINAL = tuple(status.value for status in MessageStatus if status in FINAL_STATUSES)
TOP_ERRORS = 5  # the error kinds a completed mailing's line names


async def _final_counts(session: AsyncSession, mailing_ids: list[int]) -> dict[int, dict[str, Any]]:
    """What became of the messages of mailings just completed: counts by final status, attempts,
    and the most frequent errors."""
    rows = await stats.for_mailings(session, mailing_ids)
    counts: dict[int, dict[str, Any]] = {}
    for mailing_id in mailing_ids:
        row = rows.get(mailing_id)
        if row is None:
            counts[mailing_id] = {}
            continue
        counts[mailing_id] = {
            "total": row.total,
            **{status: getattr(row, status) for status in FINAL},
            "attempts": row.attempts,
            "retried_messages": row.retried_messages,
            "errors": dict(await stats.errors(session, mailing_id, limit=TOP_ERRORS)),
        }
    return counts


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
            started, missed = await scheduling.start_due(session, now)
            pending = await scheduling.unmaterialised(session)
        for mailing_id in started:
            log.info("mailing started", extra={"mailing_id": mailing_id})
        for mailing_id in missed:
            log.info(
                "mailing completed: its whole interval passed before it started",
                extra={"mailing_id": mailing_id, "total": 0},
            )
        woke = bool(started)
        for mailing_id in pending:
            with structlog.contextvars.bound_contextvars(mailing_id=mailing_id):
                woke = await self._write_audience(mailing_id, now) or woke
        if woke:
            self._wake_sender()
        async with transaction(self._sessionmaker) as session:
            reclaimed = await claims.reclaim_expired_leases(session, now)
        if reclaimed:
            log.warning("reclaimed the messages of a stopped worker", extra={"count": reclaimed})
            self._wake_sender()
        async with transaction(self._sessionmaker) as session:
            expired = await scheduling.expire_ended(session, now)
        for mailing_id, count in expired.items():
            log.info(
                "messages expired: end_time passed",
                extra={"mailing_id": mailing_id, "count": count},
            )
        async with transaction(self._sessionmaker) as session:
            completed = await scheduling.complete_finished(session, now)
            outcomes = await _final_counts(session, completed)
        for mailing_id in completed:
            log.info("mailing completed", extra={"mailing_id": mailing_id, **outcomes[mailing_id]})
        async with transaction(self._sessionmaker) as session:
            candidates = [
                await scheduling.next_start(session),
                await scheduling.next_end(session),
                await claims.next_lease_expiry(session),
            ]
        due = [c for c in candidates if c is not None]
        return min(due) if due else None

    async def _write_audience(self, mailing_id: int, now: datetime) -> bool:
        """Write a started mailing's messages; whether this worker wrote them."""
        began = time.perf_counter()
        async with transaction(self._sessionmaker) as session:
            written = await scheduling.materialise(session, mailing_id, now)
        if written is None:
            return False
        log.info(
            "audience written",
            extra={"messages": written, "seconds": round(time.perf_counter() - began, 3)},
        )
        return True

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
