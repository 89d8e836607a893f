"""The leases of the messages one worker holds.

A claim gives the worker a lease on each message it took (``send_lease_seconds``); other workers'
schedulers take back messages whose lease expired (a worker that died). A live worker renews the
leases of everything it still holds every third of a lease — its heartbeat — and sends a message
only while it surely holds its lease until the request's timeout, with a margin for the clocks
of the other workers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notiflow.db.session import transaction
from notiflow.delivery.health import Loops
from notiflow.delivery.queue import claims
from notiflow.delivery.records import Claimed


class Leases:
    def __init__(
        self,
        *,
        seconds: float,
        worker: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        monotonic: Callable[[], float],
        loops: Loops,
        write_lock: asyncio.Lock,
        holding: Callable[[], bool],
        held: Callable[[], Iterable[Claimed]],
    ) -> None:
        self.seconds = seconds
        self.margin = min(1.0, 0.1 * seconds)
        self._worker = worker
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._monotonic = monotonic
        self._loops = loops
        self._write_lock = write_lock  # the outbox's: one write of this worker's rows at a time
        self._holding = holding
        self._held = held  # the messages still to be sent
        loops.register("leases", period=seconds / 3)

    def claimed(self, items: list[Claimed], *, began: float) -> None:
        """``items`` were claimed by a claim that began at ``began`` (monotonic)."""
        for item in items:
            item.lease_deadline = began + self.seconds
            item.claimed_at = began

    def holds(self, claimed: Claimed, seconds: float, now: float) -> bool:
        """Whether this worker surely holds ``claimed``'s lease for ``seconds`` after ``now``
        (monotonic)."""
        return now + seconds + self.margin < claimed.lease_deadline

    async def renew(self) -> None:
        """Renew the lease of every message this worker holds, in the database and here.

        Only the rows the database renewed count: a message whose lease ran out while this
        worker was held up (a long pause of the process, an overloaded machine) and that another
        worker took back meanwhile is no longer this worker's, and must not be sent by it.
        """
        began, now = self._monotonic(), self._clock()
        async with self._write_lock, transaction(self._sessionmaker) as session:
            renewed = await claims.renew_leases(
                session, worker=self._worker, until=now + timedelta(seconds=self.seconds)
            )
        deadline = began + self.seconds
        for item in self._held():
            # Still this worker's when the renewal began: a copy whose lease had lapsed (then
            # taken back, and perhaps claimed again by this same worker) is not renewed.
            if item.id in renewed and began < item.lease_deadline < deadline:
                item.lease_deadline = deadline

    async def run(self, stop: asyncio.Event) -> None:
        """The heartbeat: renew every third of a lease while anything is held."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.seconds / 3)
            if stop.is_set():
                return
            try:
                if self._holding():
                    await self.renew()
            except Exception as exc:
                backoff = self._loops.failed("leases", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                continue
            self._loops.done("leases")
