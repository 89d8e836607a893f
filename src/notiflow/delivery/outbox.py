"""The outbox: outcomes of claimed messages on their way to the database.

An outcome leaves memory only once the transaction that stored it has committed. A batch that
fails to be written stays, and is written again after a back-off on a fresh connection; a batch
that fails for a reason of its own (bad data, not an outage) is halved until the one bad outcome
is found, and that one is logged by id and dropped (its lease expires and it is tried again), so
one bad record never stops delivery. The outbox is bounded: while it holds more than a batch, the
sender starts no new request (``full``/``wait_room``), so that what a crash can lose — sent but
not recorded, hence sent again after a restart — stays within ``send_batch_size`` +
``send_concurrency`` messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notiflow.db.session import Lane
from notiflow.delivery.health import Loops, describe, is_outage
from notiflow.delivery.queue import outcomes
from notiflow.delivery.records import Done
from notiflow.metrics.engine import EngineMetrics
from notiflow.models import MessageStatus

log = logging.getLogger("notiflow.engine")

FLUSH_SECONDS = 0.05  # longest an outcome waits in memory before a write starts


class Outbox:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        worker: str,
        clock: Callable[[], datetime],
        batch_size: int,
        loops: Loops,
        monotonic: Callable[[], float] = time.monotonic,
        message_events: Callable[[], Collection[str]] = frozenset,
        metrics: EngineMetrics | None = None,
    ) -> None:
        self._lane = Lane(sessionmaker)
        self._worker = worker
        self._clock = clock
        self._batch = batch_size
        self._chunk = batch_size  # smaller while a bad outcome is being isolated
        self._flush_at = max(1, batch_size // 2)
        self._loops = loops
        self._monotonic = monotonic
        # The webhook message events someone subscribes to (see webhooks.subscriptions).
        self._message_events = message_events
        self._items: list[Done] = []
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closed = asyncio.Event()
        # Serialises every write of this worker's messages (outcomes and lease renewals), so
        # that two of its own transactions never wait for each other's row locks.
        self.lock = asyncio.Lock()
        self.sent = 0  # sent outcomes committed
        # How long write-backs take; the outcomes they store are counted by the write-back.
        self._timer = (metrics or EngineMetrics.detached(provider_timeout=1.0)).writeback_seconds
        loops.register("writer", period=FLUSH_SECONDS)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def full(self) -> bool:
        return len(self._items) > self._batch

    async def wait_room(self) -> None:
        await self._room.wait()

    def put(self, done: Done) -> None:
        items = self._items
        items.append(done)
        if len(items) >= self._flush_at:
            self._wake.set()
            if len(items) > self._batch:
                self._room.clear()

    async def flush(self) -> None:
        """Write every outcome put before this call; raise what the database raised."""
        async with self.lock:
            remaining = len(self._items)
            while remaining > 0:
                chunk = self._items[: min(remaining, self._chunk)]
                await self._write(chunk)
                del self._items[: len(chunk)]
                remaining -= len(chunk)
                self.sent += sum(1 for done in chunk if done.status is MessageStatus.sent)
                if len(self._items) <= self._batch:
                    self._room.set()

    async def _write(self, chunk: list[Done]) -> None:
        began = time.perf_counter()
        async with self._lane.unit() as session:
            await outcomes.write_back(
                session,
                worker=self._worker,
                results=chunk,
                now=self._clock(),
                events=self._message_events(),
            )
        self._timer.observe(time.perf_counter() - began)

    async def run(self) -> None:
        """The writer: store outcomes in batches, concurrently with claiming and sending, until
        ``close``."""
        self._closed.clear()
        while not self._closed.is_set():
            if len(self._items) < self._flush_at:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), FLUSH_SECONDS)
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:
                backoff = self._loops.failed("writer", exc)
                if not is_outage(exc) and self._isolate():
                    continue  # a smaller batch at once: the good part of it goes through
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), backoff)
                continue
            self._loops.done("writer")
            if self._chunk < self._batch:
                self._chunk = min(self._batch, self._chunk * 2)

    def _isolate(self) -> bool:
        """A write failed for a reason of its own: halve the batch (return True) until the bad
        outcome is alone, then drop it (logged by id) rather than let it block every other one.
        A failure that is not one outcome's own thus costs one outcome per back-off at most."""
        if self._chunk > 1:
            self._chunk = max(1, self._chunk // 2)
            return True
        bad = self._items.pop(0)
        log.error(
            "could not store the outcome of a message; dropped: its lease will expire and it "
            "will be tried again",
            extra={"message_id": bad.id, "mailing_id": bad.mailing_id, "status": bad.status.value},
        )
        if len(self._items) <= self._batch:
            self._room.set()
        return False

    async def close(self, *, within: float) -> None:
        """Stop the writer and store what is left, trying for up to ``within`` seconds; log the
        ids of whatever could not be stored."""
        self._closed.set()
        self._wake.set()
        deadline = self._monotonic() + within
        failures = 0
        while self._items:
            try:
                await self.flush()
            except Exception as exc:
                failures += 1
                left = deadline - self._monotonic()
                if left <= 0:
                    log.error("storing the last outcomes failed", extra={"error": describe(exc)})
                    break
                if not is_outage(exc):
                    self._isolate()
                await asyncio.sleep(min(left, 0.2 * 2 ** min(failures, 5)))
        if self._items:
            log.error(
                "stopping with outcomes not stored; their leases will expire and they will be "
                "tried again (a message the provider had accepted is then sent twice)",
                extra={
                    "count": len(self._items),
                    "message_ids": [done.id for done in self._items],
                },
            )
            self._items.clear()
        async with self.lock:  # the writer may be half-way through a write
            await self._lane.close()
