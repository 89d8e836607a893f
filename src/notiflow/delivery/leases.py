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
from collections.abc import Callable
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
        self._renewed_until = 0.0  # monotonic: every lease held when a renewal began lasts this
        loops.register("leases", period=seconds / 3)

    def claimed(self, items: list[Claimed], *, began: float) -> None:
        """``items`` were claimed by a claim that began at ``began`` (monotonic)."""
        for item in items:
            item.lease_deadline = began + self.seconds

    def holds(self, claimed: Claimed, seconds: float, now: float) -> bool:
        """Whether this worker surely holds ``claimed``'s lease for ``seconds`` after ``now``
        (monotonic)."""
        deadline = max(claimed.lease_deadline, self._renewed_until)
        return now + seconds + self.margin < deadline

    async def renew(self) -> None:
        """Renew the lease of every message this worker holds, in the database and here."""
        began, now = self._monotonic(), self._clock()
        async with self._write_lock, transaction(self._sessionmaker) as session:
            await claims.renew_leases(
                session, worker=self._worker, until=now + timedelta(seconds=self.seconds)
            )
        self._renewed_until = began + self.seconds

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
