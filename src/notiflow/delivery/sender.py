"""The sender: claims due messages, sends them concurrently, writes the outcomes back in batches.

One loop per worker. It claims a fair share of each running mailing's due messages, so a small
mailing is never stuck behind a large one; keeps at most ``send_concurrency`` requests in flight;
and stores outcomes in batches. A circuit breaker stops it from hammering a provider that is down,
and a 401/403 pauses it (messages stay pending) until a probe gets through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notiflow.config import Settings
from notiflow.core.clock import Clock
from notiflow.db.session import transaction
from notiflow.delivery import queue
from notiflow.delivery.breaker import BreakerState, CircuitBreaker
from notiflow.delivery.policy import Outcome, RetryPolicy, Verdict
from notiflow.delivery.provider import ProviderClient
from notiflow.delivery.queue import ActiveMailing, Claimed, Done
from notiflow.delivery.ratelimit import RateLimiter
from notiflow.delivery.window import next_opening
from notiflow.models import MessageStatus

log = logging.getLogger("notiflow.engine")

REFRESH_SECONDS = 0.25  # how stale the sender's view of running mailings may get
FLUSH_SECONDS = 0.05  # longest an outcome waits in memory before it is written
EMPTY_CLAIM_PAUSE = 0.1  # after a claim found nothing due, while sends are in flight


@dataclass
class SenderStatus:
    """What /health shows of the sender."""

    provider: str = "ok"  # ok · unauthorized · circuit_open · circuit_half_open
    in_flight: int = 0
    sent: int = 0
    failed_attempts: int = 0
    last_error: str | None = None
    auth_error: str | None = None
    engine_error: str | None = None
    last_loop: float = field(default_factory=time.monotonic)


class Sender:
    def __init__(
        self,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        provider: ProviderClient,
        worker: str,
        wake: asyncio.Event,
        on_idle: Callable[[], None] = lambda: None,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._provider = provider
        self.worker = worker
        self._wake = wake
        self._on_idle = on_idle
        self._busy = False
        self._rng = rng or random.Random()
        self._policy = RetryPolicy(
            base_seconds=settings.retry_base_seconds,
            max_seconds=settings.retry_max_seconds,
            max_attempts=settings.send_max_attempts,
        )
        self.breaker = CircuitBreaker(
            window=settings.breaker_window,
            min_requests=settings.breaker_min_requests,
            failure_ratio=settings.breaker_failure_ratio,
            cooldown=settings.breaker_cooldown_seconds,
        )
        self._limiter = RateLimiter(settings.send_rate)
        self._mailings: dict[int, ActiveMailing] = {}
        self._refreshed = 0.0
        self._rotation = 0
        # Send chains: each task sends claimed messages one after another; the value is the
        # message it is sending now.
        self._in_flight: dict[asyncio.Task[None], Claimed | None] = {}
        self._stopping = False
        self._releasing = False
        self._buffer: list[Done] = []
        self._ready: deque[Claimed] = deque()
        self._claiming: asyncio.Task[int] | None = None
        self._empty_claim_at: float | None = None
        self._flush_now = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._slot_free = asyncio.Event()
        self._writer_done = False
        self._auth_paused_until: float | None = None
        self._auth_probe_out = False
        self.status = SenderStatus()
        self._debug = log.isEnabledFor(logging.DEBUG)
        # Claim in chunks: wait until a quarter of the slots (or a batch) is free.
        self._claim_threshold = max(
            1, min(settings.send_batch_size, settings.send_concurrency // 4)
        )
        self._texts: dict[int, bytes] = {}

    # --- decisions ----------------------------------------------------------------------------

    def _mailing(self, claimed: Claimed) -> ActiveMailing | None:
        return self._mailings.get(claimed.mailing_id)

    def _before_send(self, claimed: Claimed, mailing: ActiveMailing, now: datetime) -> Done | None:
        """Settle a claimed message that must not be sent now; None if it should be sent."""
        if claimed.phone is None:
            return Done(
                claimed.id,
                claimed.mailing_id,
                MessageStatus.cancelled,
                claimed.attempts,
                attempted=False,
                last_error="client deleted",
            )
        if now >= mailing.end_time:
            return self._expired(claimed, None)
        if mailing.window_start is not None and mailing.window_end is not None:
            opening = next_opening(
                now,
                start=mailing.window_start,
                end=mailing.window_end,
                timezone=claimed.timezone or "UTC",
            )
            if opening is not None:
                if opening >= mailing.end_time:
                    return self._expired(
                        claimed, "the send window does not open again before end_time"
                    )
                return Done(
                    claimed.id,
                    claimed.mailing_id,
                    MessageStatus.pending,
                    claimed.attempts,
                    attempted=False,
                    next_attempt_at=opening,
                )
        return None

    def _expired(self, claimed: Claimed, reason: str | None) -> Done:
        return Done(
            claimed.id,
            claimed.mailing_id,
            MessageStatus.expired,
            claimed.attempts,
            attempted=False,
            last_error=reason or "end_time passed before sending",
        )

    def _after_send(self, claimed: Claimed, outcome: Outcome, now: datetime) -> Done:
        """The new state of a message after one request, as the retry policy decides."""
        attempts = claimed.attempts + 1

        def attempted(status: MessageStatus, **extra: Any) -> Done:
            return Done(claimed.id, claimed.mailing_id, status, attempts, True, **extra)

        if outcome.verdict is Verdict.sent:
            return attempted(MessageStatus.sent, sent_at=now)
        failure = {"last_error": outcome.detail, "error_kind": outcome.error}
        if outcome.verdict is Verdict.fail:
            return attempted(MessageStatus.failed, **failure)
        if outcome.verdict is Verdict.unauthorized:
            # Not the message's fault: it keeps its attempts and waits for the pause to end.
            return Done(
                claimed.id,
                claimed.mailing_id,
                MessageStatus.pending,
                claimed.attempts,
                False,
                next_attempt_at=now + timedelta(seconds=self._settings.auth_retry_seconds),
                last_error=outcome.detail,
            )
        if self._policy.gives_up(attempts):
            failure["last_error"] = f"gave up after {attempts} attempts; last: {outcome.detail}"
            return attempted(MessageStatus.failed, **failure)
        retry_at = self._policy.next_attempt(
            attempts=attempts, now=now, retry_after=outcome.retry_after, rng=self._rng
        )
        mailing = self._mailings.get(claimed.mailing_id)
        if mailing is None or retry_at >= mailing.end_time:
            return attempted(MessageStatus.expired, **failure)
        return attempted(MessageStatus.pending, next_attempt_at=retry_at, **failure)

    # --- provider health ----------------------------------------------------------------------

    def _budget(self) -> int:
        """How many messages may be claimed now: -1 any, 1 a probe, 0 none."""
        if self._auth_paused_until is not None:
            if self._auth_probe_out or time.monotonic() < self._auth_paused_until:
                return 0
            return 1
        return self.breaker.allow()

    def _note(self, outcome: Outcome) -> None:
        if outcome.verdict is Verdict.unauthorized:
            self._auth_probe_out = False
            if self._auth_paused_until is None:
                log.error(
                    "the provider refused the token (%s): sending is paused, messages stay "
                    "pending; check NOTIFLOW_PROVIDER_TOKEN. Probing every %.0f s.",
                    outcome.detail,
                    self._settings.auth_retry_seconds,
                )
            self._auth_paused_until = time.monotonic() + self._settings.auth_retry_seconds
            self.status.auth_error = outcome.detail
            return
        if self._auth_paused_until is not None:
            self._auth_paused_until = None
            self._auth_probe_out = False
            self.status.auth_error = None
            log.warning("the provider accepts the token again: sending resumes")
        before = self.breaker.state
        self.breaker.record(not outcome.provider_failed)
        if outcome.provider_failed:
            self.status.failed_attempts += 1
            self.status.last_error = outcome.detail
        if self.breaker.state is not before:
            if self.breaker.state is BreakerState.open:
                log.warning(
                    "circuit breaker open: the provider is failing (%s); pausing %.1f s",
                    outcome.detail,
                    self.breaker.seconds_until_probe(),
                )
            elif self.breaker.state is BreakerState.closed:
                log.warning("circuit breaker closed: the provider answers again")

    def _refresh_status(self) -> None:
        if self._auth_paused_until is not None:
            self.status.provider = "unauthorized"
        elif self.breaker.state is BreakerState.open:
            self.status.provider = "circuit_open"
        elif self.breaker.state is BreakerState.half_open:
            self.status.provider = "circuit_half_open"
        else:
            self.status.provider = "ok"
        self.status.in_flight = len(self._in_flight)
        self.status.last_loop = time.monotonic()

    # --- the loop -----------------------------------------------------------------------------

    async def _send(self, claimed: Claimed, text: bytes) -> Done:
        if self._limiter.rate > 0:
            await self._limiter.acquire()
        mailing = self._mailings.get(claimed.mailing_id)
        now = self._clock()
        if mailing is None or now >= mailing.end_time:
            return self._expired(claimed, None)
        timeout = min(self._settings.provider_timeout, (mailing.end_time - now).total_seconds())
        assert claimed.phone is not None
        outcome = await self._provider.send(
            claimed.id, claimed.phone, text, seconds=timeout, now=now
        )
        self._note(outcome)
        finished = self._clock()
        if self._debug:
            log.debug(
                "send mailing_id=%s message_id=%s client_id=%s verdict=%s error=%s",
                claimed.mailing_id,
                claimed.id,
                claimed.client_id,
                outcome.verdict.value,
                outcome.error,
            )
        return self._after_send(claimed, outcome, finished)

    async def _refresh(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._refreshed < REFRESH_SECONDS:
            return
        async with transaction(self._sessionmaker) as session:
            active = await queue.active_mailings(session)
        self._mailings = {m.id: m for m in active}
        self._texts = {
            m.id: self._texts.get(m.id) or ProviderClient.encode_text(m.text) for m in active
        }
        self._refreshed = time.monotonic()
        now = self._clock()
        for task, claimed in self._in_flight.items():
            if claimed is None:
                continue
            mailing = self._mailings.get(claimed.mailing_id)
            # Cancelled, deleted, or its end_time moved before now: stop the request.
            if mailing is None or mailing.end_time <= now:
                task.cancel()

    async def _claim(self, limit: int) -> int:
        now = self._clock()
        lease = now + timedelta(seconds=self._settings.send_lease_seconds)
        ids = list(self._mailings)
        if not ids:
            return 0
        self._rotation = (self._rotation + 1) % len(ids)
        order = ids[self._rotation :] + ids[: self._rotation]
        share = max(1, limit // len(order))
        claimed_total = 0
        for mailing_id in order:
            want = min(share, limit - claimed_total)
            if want <= 0:
                break
            async with transaction(self._sessionmaker) as session:
                mailing, claimed = await queue.claim(
                    session,
                    mailing_id=mailing_id,
                    worker=self.worker,
                    now=now,
                    lease_until=lease,
                    limit=want,
                )
            claimed_total += len(claimed)
            if mailing is not None:
                self._mailings[mailing_id] = mailing  # fresher than the last refresh
            for item in claimed:
                if mailing is None:
                    # Cancelled or deleted as it was claimed: back to the queue, where the
                    # cancel (or delete) settles it.
                    settled: Done | None = Done(
                        item.id,
                        mailing_id,
                        MessageStatus.pending,
                        item.attempts,
                        False,
                        next_attempt_at=now,
                    )
                else:
                    settled = self._before_send(item, mailing, now)
                if settled is not None:
                    self._store(settled)
                else:
                    self._ready.append(item)
        self._slot_free.set()  # let the loop start what was claimed
        return claimed_total

    def _start_ready(self) -> None:
        """Start send chains for claimed messages while there are free slots."""
        concurrency = self._settings.send_concurrency
        while self._ready and len(self._in_flight) < concurrency:
            item = self._take_ready()
            if item is None:
                return
            task = asyncio.create_task(self._chain(item))
            self._in_flight[task] = None
            task.add_done_callback(self._chain_ended)

    def _take_ready(self) -> Claimed | None:
        """The next claimed message, if the provider's state lets one go out now."""
        budget = self._budget()
        if budget == 0 or not self._ready:
            return None
        if budget == 1:  # a probe after a pause: exactly one
            if self._auth_paused_until is not None:
                self._auth_probe_out = True
            else:
                self.breaker.probe_started()
        return self._ready.popleft()

    def _next_ready(self) -> Claimed | None:
        if self._stopping or not self._ready:
            self._slot_free.set()
            return None
        item = self._take_ready()
        if item is None:
            self._slot_free.set()
            return None
        if len(self._ready) < self._settings.send_batch_size:
            self._slot_free.set()  # time to claim more
        return item

    async def _chain(self, item: Claimed | None) -> None:
        """Send claimed messages one after another while there are any: one task per slot
        rather than one per message, which keeps the event loop's overhead per message low."""
        task = asyncio.current_task()
        assert task is not None
        while item is not None:
            text = self._texts.get(item.mailing_id)
            if text is not None:  # else its mailing was cancelled or deleted meanwhile
                self._in_flight[task] = item
                try:
                    done = await self._send(item, text)
                except asyncio.CancelledError:
                    self._settle_cancelled(item)
                    raise
                except Exception as exc:  # a bug must not lose the message: retry it later
                    log.exception("send of message_id=%s crashed", item.id)
                    done = Done(
                        item.id,
                        item.mailing_id,
                        MessageStatus.pending,
                        item.attempts,
                        False,
                        next_attempt_at=self._clock()
                        + timedelta(seconds=self._settings.retry_base_seconds),
                        last_error=f"internal error: {exc!r}"[:500],
                    )
                self._in_flight[task] = None
                self._store(done)
            item = self._next_ready()

    def _chain_ended(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        self._slot_free.set()

    def _settle_cancelled(self, claimed: Claimed) -> None:
        """A request stopped before its answer: its end_time passed, or its mailing went."""
        if self._releasing:
            return  # a graceful stop gives it back instead
        mailing = self._mailings.get(claimed.mailing_id)
        if mailing is not None and mailing.end_time <= self._clock():
            self._store(self._expired(claimed, None))
        # else: the mailing was cancelled or deleted; the API settled its messages.

    def _store(self, done: Done) -> None:
        self._buffer.append(done)
        if len(self._buffer) >= self._settings.send_batch_size:
            self._flush_now.set()

    async def _flush(self) -> None:
        """Write the buffered outcomes. Serialised, so that a caller that awaits it knows every
        outcome stored before the call is committed (the writer may be half-way through one)."""
        async with self._flush_lock:
            if not self._buffer:
                return
            batch, self._buffer = self._buffer, []
            now = self._clock()
            size = self._settings.send_batch_size
            for start in range(0, len(batch), size):
                async with transaction(self._sessionmaker) as session:
                    await queue.write_back(
                        session, worker=self.worker, results=batch[start : start + size], now=now
                    )
            self.status.sent += sum(1 for d in batch if d.status is MessageStatus.sent)

    async def _writer(self, stop: asyncio.Event) -> None:
        """Store outcomes in batches, concurrently with claiming and sending."""
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), FLUSH_SECONDS)
            self._flush_now.clear()
            if stop.is_set() and self._writer_done:
                return
            try:
                await self._flush()
                failures = 0
            except (OperationalError, DBAPIError, OSError) as exc:
                failures += 1
                self.status.engine_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                log.error("storing outcomes failed (%s); retrying", exc)
                await asyncio.sleep(min(0.5 * failures, 5.0))

    async def _idle_wait(self, stop: asyncio.Event) -> None:
        """Nothing to do: sleep until the next message is due, a change, or the poll interval."""
        wait = self._settings.engine_poll_seconds
        if self._mailings:
            async with transaction(self._sessionmaker) as session:
                due = await queue.next_due(session, list(self._mailings))
            if due is not None:
                wait = min(wait, max(0.0, (due - self._clock()).total_seconds()))
        budget_wait = self.breaker.seconds_until_probe()
        if budget_wait:
            wait = min(wait, budget_wait)
        if self._auth_paused_until is not None:
            wait = min(wait, max(0.01, self._auth_paused_until - time.monotonic()))
        if wait <= 0:
            return
        await self._wait_any((self._wake, stop), wait)
        if self._wake.is_set():
            self._wake.clear()
            await self._refresh(force=True)

    @staticmethod
    async def _wait_any(events: tuple[asyncio.Event, ...], seconds: float) -> None:
        waiters = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def step(self, stop: asyncio.Event) -> None:
        """One turn of the loop. Claims run in the background while sends go on, so the time a
        claim takes in the database never leaves the provider idle."""
        await self._refresh(force=self._wake.is_set())
        self._wake.clear()
        self._start_ready()
        if self._claiming is not None and self._claiming.done():
            claiming, self._claiming = self._claiming, None
            claimed = claiming.result()  # a database error surfaces here
            self._empty_claim_at = time.monotonic() if claimed == 0 else None
            self._start_ready()
        batch = self._settings.send_batch_size
        # Keep up to two batches claimed and ready beyond the requests in flight, so a claim's
        # time in the database never leaves the provider idle.
        room = self._settings.send_concurrency + 2 * batch - len(self._in_flight) - len(self._ready)
        budget = self._budget()
        if (
            self._claiming is None
            and budget != 0
            and self._mailings
            and room >= self._claim_threshold
            and len(self._ready) < batch
            and not self._recently_empty()
        ):
            limit = min(room, batch) if budget < 0 else 1
            self._claiming = asyncio.create_task(self._claim(limit))
        if budget == 0 and self._ready and self._claiming is None:
            await self._give_back_ready()
        self._refresh_status()
        if self._claiming is not None or self._in_flight or self._ready:
            self._busy = self._busy or bool(self._in_flight or self._ready)
            self._slot_free.clear()
            waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._slot_free.wait())]
            if self._claiming is not None:
                waits.append(self._claiming)
            waits.append(asyncio.ensure_future(stop.wait()))
            try:
                await asyncio.wait(
                    waits, timeout=REFRESH_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for waiter in waits:
                    if waiter is not self._claiming:
                        waiter.cancel()
        else:
            self._empty_claim_at = None
            if self._busy:
                # Work just ran out: store the last outcomes and let the scheduler look at once,
                # so a mailing completes now rather than at its next poll.
                self._busy = False
                await self._flush()
                self._on_idle()
            await self._idle_wait(stop)

    async def _give_back_ready(self) -> None:
        """The provider is paused: return claimed messages to the queue rather than hold their
        leases through a long pause (another worker may take them when it resumes)."""
        items = list(self._ready)
        self._ready.clear()
        async with transaction(self._sessionmaker) as session:
            await queue.release(
                session, worker=self.worker, ids=[c.id for c in items], now=self._clock()
            )

    def _recently_empty(self) -> bool:
        """Whether a claim just found nothing due. Then, with nothing under way, the loop goes
        idle (sleeping until the next due time or a change); with sends under way, it asks
        again only after a short pause. Either way it never spins on empty claims."""
        if self._empty_claim_at is None:
            return False
        if not (self._in_flight or self._ready):
            return True
        return time.monotonic() - self._empty_claim_at < EMPTY_CLAIM_PAUSE

    async def run(self, stop: asyncio.Event) -> None:
        writer = asyncio.create_task(self._writer(stop), name="writer")
        failures = 0
        try:
            while not stop.is_set():
                try:
                    await self.step(stop)
                    failures = 0
                    self.status.engine_error = None
                except (OperationalError, DBAPIError, OSError) as exc:
                    failures += 1
                    self.status.engine_error = (
                        f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                    )
                    log.error("sender step failed (%s); retrying", exc)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), min(0.5 * failures, 10.0))
        finally:
            await self._drain(writer)

    async def _drain(self, writer: asyncio.Task[None]) -> None:
        """Graceful stop: let requests in flight finish (bounded), store every outcome, and give
        back whatever could not finish, so nothing is lost."""
        if self._claiming is not None:
            with contextlib.suppress(Exception):
                await self._claiming
            self._claiming = None
        self._stopping = True  # chains finish their current message and take no other
        leftover = list(self._ready)
        self._ready.clear()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=self._settings.provider_timeout + 1)
        self._releasing = True
        leftover += [item for item in self._in_flight.values() if item is not None]
        tasks = list(self._in_flight)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._writer_done = True
        self._flush_now.set()
        with contextlib.suppress(Exception):
            await writer
        try:
            await self._flush()
            if leftover:
                async with transaction(self._sessionmaker) as session:
                    await queue.release(
                        session,
                        worker=self.worker,
                        ids=[c.id for c in leftover],
                        now=self._clock(),
                    )
        except (OperationalError, DBAPIError, OSError) as exc:
            log.error("could not store the last outcomes (%s); their leases will expire", exc)
