"""The webhook dispatcher: a loop of the engine that sends due webhook deliveries.

It claims due deliveries (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so any number of workers
share them) under a lease, sends each one in a task of its own — at most
``webhook_concurrency`` at once, on an HTTP session of its own, so it never takes a slot or a
connection from the sender — and stores the outcome of every attempt: delivered (any 2xx), or
retried with exponential back-off and jitter (any other status, a timeout, a connection error)
until ``webhook_max_attempts``, then failed. A worker that dies leaves its deliveries due again
when their lease ends; a delivery may then be sent twice, and receivers dedupe by its id.

It is woken when deliveries are queued in this process (``events.QUEUED``), by a NOTIFY from
another process on PostgreSQL, and by its own retries coming due; otherwise it looks every
``engine_poll_seconds``. It also keeps the engine's view of who subscribes to what fresh.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notiflow.config import Settings
from notiflow.core.clock import Clock
from notiflow.db.session import transaction
from notiflow.delivery.health import Loops, pause
from notiflow.delivery.policy import RetryPolicy, classify_exception
from notiflow.models import DeliveryStatus
from notiflow.webhooks import events, repository, signing
from notiflow.webhooks.repository import Attempted, ClaimedDelivery
from notiflow.webhooks.subscriptions import Subscriptions

log = logging.getLogger("notiflow.webhooks")

LOOP = "webhooks"
ERROR_MAX = 500  # the width of webhook_deliveries.last_error
ANSWER_READ = 200  # bytes of a refusing answer kept in last_error
DRAIN_SECONDS = 5.0  # how long a stopping dispatcher keeps trying to store its last outcomes


def lease_seconds(settings: Settings) -> float:
    """How long a claimed delivery stays with its worker: the attempt, and time to store it."""
    return 3 * settings.webhook_timeout_seconds + 10


def decide(
    delivery: ClaimedDelivery,
    *,
    status_code: int | None,
    error: str | None,
    now: datetime,
    policy: RetryPolicy,
    rng: random.Random,
) -> Attempted:
    """What becomes of a delivery after an attempt: ``error`` is None when it was delivered."""
    attempts = delivery.attempts + 1
    if error is None:
        return Attempted(
            delivery.id, DeliveryStatus.delivered, attempts, None, status_code, None, now
        )
    error = error[:ERROR_MAX]
    if policy.gives_up(attempts):
        return Attempted(
            delivery.id, DeliveryStatus.failed, attempts, None, status_code, error, None
        )
    retry_at = policy.next_attempt(attempts=attempts, now=now, retry_after=None, rng=rng)
    return Attempted(
        delivery.id, DeliveryStatus.pending, attempts, retry_at, status_code, error, None
    )


class Dispatcher:
    def __init__(
        self,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        worker: str,
        loops: Loops,
        subscriptions: Subscriptions,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._worker = worker
        self._loops = loops
        self.subscriptions = subscriptions
        self._rng = rng or random.Random()
        self._monotonic = monotonic
        self._policy = RetryPolicy(
            base_seconds=settings.webhook_retry_base_seconds,
            max_seconds=settings.webhook_retry_max_seconds,
            max_attempts=settings.webhook_max_attempts,
        )
        self._timeout = settings.webhook_timeout_seconds
        self._lease = timedelta(seconds=lease_seconds(settings))
        self._slots = settings.webhook_concurrency
        self._poll = settings.engine_poll_seconds
        self._wake = asyncio.Event()
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._results: list[Attempted] = []  # outcomes not stored yet
        self._retries: list[datetime] = []  # a heap: when this worker's retries come due
        self.delivered = 0
        self.failed = 0
        loops.register(LOOP, period=settings.engine_poll_seconds)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def wake(self) -> None:
        """Deliveries were queued: look at once."""
        self._wake.set()

    def changed(self) -> None:
        """The webhooks (or anything) changed: look again at who subscribes, and at deliveries."""
        self.subscriptions.changed()
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        connector = aiohttp.TCPConnector(limit=self._slots, ttl_dns_cache=300)
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            raise_for_status=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        ) as http:
            self._http = http
            try:
                while not stop.is_set():
                    self._wake.clear()
                    try:
                        await self.step()
                    except Exception as exc:  # any error: retried with back-off, never the end
                        await pause(stop, self._loops.failed(LOOP, exc))
                        continue
                    self._loops.done(LOOP)
                    await pause(stop, self._sleep_seconds(), wake=self._wake)
            finally:
                await self._drain()
                self._http = None

    async def step(self) -> int:
        """One round: refresh the subscriptions if due, store the outcomes so far, claim due
        deliveries for the free slots and start sending them; return how many were claimed."""
        now = self._clock()
        stored = len(self._results)
        free = self._slots - len(self._tasks)
        subscriptions = self.subscriptions
        if not (subscriptions.due or stored or (free > 0 and subscriptions.events)):
            return 0  # no active webhook at all: nothing to send (looked at again when due)
        async with transaction(self._sessionmaker) as session:
            if subscriptions.due:
                await subscriptions.refresh(session)
            if stored:
                await repository.record(
                    session, worker=self._worker, results=self._results[:stored], now=now
                )
            claimed = []
            # Deliveries are sent only to active webhooks, and an active webhook subscribes to
            # some event: with none, there is nothing to claim.
            if free > 0 and subscriptions.events:
                claimed = await repository.claim(
                    session,
                    worker=self._worker,
                    now=now,
                    lease_until=now + self._lease,
                    limit=free,
                )
        self._forget(stored)
        for delivery in claimed:
            task = asyncio.create_task(self._deliver(delivery), name="webhook delivery")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(claimed)

    def _forget(self, stored: int) -> None:
        """The first ``stored`` outcomes have committed."""
        for result in self._results[:stored]:
            if result.status is DeliveryStatus.pending and result.next_attempt_at is not None:
                heapq.heappush(self._retries, result.next_attempt_at)
            elif result.status is DeliveryStatus.delivered:
                self.delivered += 1
            else:
                self.failed += 1
        del self._results[:stored]

    def _sleep_seconds(self) -> float:
        """Until the poll, or this worker's next retry, whichever is first."""
        if self._results:
            return 0.0
        now = self._clock()
        while self._retries and self._retries[0] <= now:
            heapq.heappop(self._retries)
        wait = self._poll
        if self._retries:
            wait = min(wait, (self._retries[0] - now).total_seconds())
        return max(0.0, wait)

    async def _deliver(self, delivery: ClaimedDelivery) -> None:
        """One attempt; its outcome waits in memory for the loop to store it."""
        status_code, error = await self._attempt(delivery)
        result = decide(
            delivery,
            status_code=status_code,
            error=error,
            now=self._clock(),
            policy=self._policy,
            rng=self._rng,
        )
        fields = {
            "delivery_id": delivery.id,
            "webhook_id": delivery.webhook_id,
            "webhook_event": delivery.event,
            "attempt": result.attempts,
            "status_code": status_code,
            "error": error,
        }
        if result.status is DeliveryStatus.failed:
            log.warning("webhook delivery failed: no attempts left", extra=fields)
        elif result.status is DeliveryStatus.pending:
            log.warning(
                "webhook delivery will be retried",
                extra={**fields, "retry_at": result.next_attempt_at},
            )
        else:
            log.debug("webhook delivery attempt", extra=fields)
        self._results.append(result)
        self._wake.set()

    async def _attempt(self, delivery: ClaimedDelivery) -> tuple[int | None, str | None]:
        """POST the delivery; return the answer's status code and what went wrong (None: 2xx).
        Never raises for what the receiver (or the network) does."""
        assert self._http is not None
        body = events.body(delivery.id, delivery.event, delivery.created_at, delivery.data)
        headers = signing.headers(
            secret=delivery.secret,
            timestamp=int(self._clock().timestamp()),
            body=body,
            event=delivery.event,
            delivery_id=delivery.id,
        )
        try:
            async with self._http.post(
                delivery.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                answer = await response.content.read(ANSWER_READ)
                if 200 <= response.status < 300:
                    return response.status, None
                text = answer.decode("utf-8", "replace").strip()
                return response.status, f"HTTP {response.status}" + (f": {text}" if text else "")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            outcome = classify_exception(exc)
            return None, outcome.detail or outcome.error or type(exc).__name__
        except Exception as exc:  # e.g. a URL the HTTP client cannot use: a failed attempt
            return None, f"{type(exc).__name__}: {exc}"

    async def _drain(self) -> None:
        """Graceful stop: let the attempts under way finish (bounded by their timeout), and
        store every outcome. What cannot finish or be stored stays claimed until its lease ends,
        and is then sent again."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self._timeout + 1)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        deadline = self._monotonic() + DRAIN_SECONDS
        while self._results:
            stored = len(self._results)
            try:
                async with transaction(self._sessionmaker) as session:
                    await repository.record(
                        session,
                        worker=self._worker,
                        results=self._results[:stored],
                        now=self._clock(),
                    )
            except Exception as exc:
                if self._monotonic() >= deadline:
                    log.error(
                        "stopping with webhook outcomes not stored; those deliveries are sent "
                        "again when their lease ends",
                        extra={
                            "count": len(self._results),
                            "error": str(exc),
                            "delivery_ids": [r.id for r in self._results],
                        },
                    )
                    return
                await asyncio.sleep(0.2)
                continue
            self._forget(stored)
