"""The sender: claims due messages, sends them concurrently, hands the outcomes to the outbox.

One loop per worker. It claims a fair share of each running mailing's due messages, so a small
mailing is never stuck behind a large one; keeps at most ``send_concurrency`` requests in flight;
and renews the leases of everything it holds (a heartbeat), so that no other worker takes a
message this one is still working on. A message is never sent unless this worker surely holds
its lease until the request's timeout. What to do with a message is decided in
``delivery.decisions``; whether a request may go at all, in ``delivery.gate``; outcomes are stored
by ``delivery.outbox``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notiflow.config import Settings
from notiflow.core.clock import Clock
from notiflow.db.session import Lane, transaction
from notiflow.delivery import decisions, message_log
from notiflow.delivery.breaker import CircuitBreaker
from notiflow.delivery.gate import ProviderGate, Ticket
from notiflow.delivery.health import Loops
from notiflow.delivery.leases import Leases
from notiflow.delivery.outbox import Outbox
from notiflow.delivery.policy import Outcome, RetryPolicy, Verdict
from notiflow.delivery.provider import Provider, ProviderClient
from notiflow.delivery.queue import claims
from notiflow.delivery.ratelimit import RateLimiter
from notiflow.delivery.ready import ReadyQueue
from notiflow.delivery.records import ActiveMailing, Claimed, Done
from notiflow.delivery.signal import HaltKind
from notiflow.delivery.watch import FailureWatch
from notiflow.mailings.service import pause_by_engine
from notiflow.metrics.engine import EngineMetrics
from notiflow.models import MessageStatus

log = logging.getLogger("notiflow.engine")

REFRESH_SECONDS = 0.25  # how stale the sender's view of running mailings may get
EMPTY_CLAIM_PAUSE = 0.1  # after a claim found nothing due, while sends are in flight
DRAIN_WRITE_SECONDS = 5.0  # how long a stopping worker keeps trying to store its last outcomes
HALT_MEMORY = 600.0  # seconds a halt is remembered


class Sender:
    def __init__(
        self,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        provider: Provider,
        worker: str,
        wake: asyncio.Event,
        loops: Loops,
        on_idle: Callable[[], None] = lambda: None,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        message_events: Callable[[], Collection[str]] = frozenset,
        metrics: EngineMetrics | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics or EngineMetrics.detached(
            provider_timeout=settings.provider_timeout
        )
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._monotonic = monotonic
        self._provider = provider
        self.worker = worker
        self._wake = wake
        self._loops = loops
        self._on_idle = on_idle
        self._rng = rng or random.Random()
        self._policy = RetryPolicy(
            base_seconds=settings.retry_base_seconds,
            max_seconds=settings.retry_max_seconds,
            max_attempts=settings.send_max_attempts,
        )
        self.gate = ProviderGate(
            breaker=CircuitBreaker(
                window=settings.breaker_window,
                min_requests=settings.breaker_min_requests,
                failure_ratio=settings.breaker_failure_ratio,
                cooldown=settings.breaker_cooldown_seconds,
                monotonic=monotonic,
            ),
            auth_retry_seconds=settings.auth_retry_seconds,
            monotonic=monotonic,
        )
        self.outbox = Outbox(
            sessionmaker=sessionmaker,
            worker=worker,
            clock=clock,
            batch_size=settings.send_batch_size,
            loops=loops,
            monotonic=monotonic,
            message_events=message_events,
            metrics=self._metrics,
        )
        self._claims = Lane(sessionmaker)  # the claims run one after another on it
        self._limiter = RateLimiter(settings.send_rate) if settings.send_rate > 0 else None
        self._concurrency = settings.send_concurrency
        self._batch = settings.send_batch_size
        self._timeout = settings.provider_timeout
        self.leases = Leases(
            seconds=settings.send_lease_seconds,
            worker=worker,
            sessionmaker=sessionmaker,
            clock=clock,
            monotonic=monotonic,
            loops=loops,
            write_lock=self.outbox.lock,
            holding=lambda: bool(self._ready or self._in_flight or len(self.outbox)),
            held=self._held,
        )
        # How many messages to hold (claimed, not yet sent): batches beyond the requests in
        # flight keep the provider busy while a claim is in the database, even when a busy
        # event loop makes a claim slow; with a rate limit, no more than can be sent within a
        # lease.
        self._hold = settings.send_concurrency + 4 * settings.send_batch_size
        if settings.send_rate > 0:
            usable = self.leases.seconds - self._timeout - self.leases.margin
            self._hold = max(1, min(self._hold, int(settings.send_rate * usable)))
        # Claim in chunks: wait until a quarter of the slots (or a batch) is free.
        self._claim_threshold = max(
            1, min(settings.send_batch_size, settings.send_concurrency // 4, self._hold // 2)
        )
        self._mailings: dict[int, ActiveMailing] = {}
        self._ends: dict[int, float] = {}  # monotonic
        self._texts: dict[int, bytes] = {}
        self._refreshed = float("-inf")
        # Halts (see signal.EngineSignal.halt), by monotonic time: a mailing paused, cancelled
        # or deleted, a client opted out or deleted. No request starts for them from then on.
        self._halted: dict[int, float] = {}
        self._blocked: dict[int, float] = {}
        self._watch = (
            FailureWatch(ratio=settings.auto_pause_failure_ratio, window=settings.auto_pause_window)
            if settings.auto_pause_failure_ratio > 0
            else None
        )
        self._background: set[asyncio.Task[None]] = set()
        # Mailings said to wait for their send window, with the opening then named.
        self._window_said: dict[int, datetime] = {}
        self._pausing: set[int] = set()  # auto-paused here, not stored yet
        self._rotation = 0
        # Send chains: each task sends claimed messages one after another; the value is the
        # message it is sending now (None between two, e.g. while the rate limit holds it).
        self._in_flight: dict[asyncio.Task[None], Claimed | None] = {}
        self._holding = 0  # chains with a message in hand
        self._ready = ReadyQueue()
        self._claiming: asyncio.Task[int] | None = None
        self._empty_claim_at: float | None = None
        self._wake_loop = asyncio.Event()  # something for the loop to do: start, claim
        self._stopping = False
        self._releasing = False
        self._busy = False
        self._debug = log.isEnabledFor(logging.DEBUG)
        loops.register("sender", period=max(REFRESH_SECONDS, settings.engine_poll_seconds))

    # --- what /health shows -----------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def sent(self) -> int:
        return self.outbox.sent

    def _held(self) -> list[Claimed]:
        """The messages this worker holds and has not sent yet (or is sending now)."""
        held = list(self._ready)
        held.extend(item for item in self._in_flight.values() if item is not None)
        return held

    # --- one message --------------------------------------------------------------------------

    async def _attempt(self, claimed: Claimed) -> tuple[Done, Outcome | None]:
        """Send one claimed message, unless it must not go now; return its new state and the
        provider's outcome (None when no request was made)."""
        mailing_id = claimed.mailing_id
        text = self._texts.get(mailing_id)
        end = self._ends.get(mailing_id)
        if text is None or end is None or (self._blocked and self._is_blocked(claimed)):
            # Paused: back to the queue. Cancelled or deleted, or its client opted out or
            # deleted: the API has settled it, and this changes nothing.
            return decisions.give_back(claimed, at=self._clock()), None
        now = self._monotonic()
        seconds = end - now
        if seconds <= 0:
            return decisions.expired(claimed), None
        if seconds > self._timeout:
            seconds = self._timeout
        if not self.leases.holds(claimed, seconds, now):
            log.warning(
                "the lease of a message ran out before it was sent; given back",
                extra=message_log.ids(claimed),
            )
            return decisions.give_back(claimed, at=self._clock()), None
        assert claimed.phone is not None  # before_send settled messages of deleted clients
        # As it was when the request left: a pause meanwhile must not turn a retry into expiry.
        mailing = self._mailings.get(mailing_id)
        began = time.perf_counter()
        outcome = await self._provider.send(claimed.id, claimed.phone, text, seconds=seconds)
        elapsed = time.perf_counter() - began
        self._metrics.answered(outcome, elapsed)
        if self._debug:
            message_log.attempt(claimed, outcome, elapsed)
        if self._watch is not None:
            self._watch_outcome(mailing_id, outcome)
        done = decisions.after_send(
            claimed,
            outcome,
            now=self._clock(),
            end_time=mailing.end_time if mailing is not None else None,
            policy=self._policy,
            rng=self._rng,
            auth_retry_seconds=self._settings.auth_retry_seconds,
        )
        if outcome.verdict is not Verdict.sent:  # rare: a WARNING for what becomes of it
            message_log.decision(claimed, outcome, done)
        return done, outcome

    def _know(self, mailings: dict[int, ActiveMailing]) -> None:
        """Take ``mailings`` as the running ones, with the monotonic time each one ends at (one
        clock read per message then says how long its request may take)."""
        self._mailings = mailings
        now, mono = self._clock(), self._monotonic()
        self._ends = {m.id: mono + (m.end_time - now).total_seconds() for m in mailings.values()}

    async def _chain(self) -> None:
        """Send claimed messages one after another while there are any: one task per slot
        rather than one per message, which keeps the event loop's overhead per message low."""
        task = asyncio.current_task()
        assert task is not None
        in_flight, outbox, limiter = self._in_flight, self.outbox, self._limiter
        while True:
            if limiter is not None:
                await limiter.acquire()
            while outbox.full:  # back-pressure: what waits unwritten stays bounded
                await outbox.wait_room()
            taken = self._next_ready()  # from here to the request, nothing waits
            if taken is None:
                return
            claimed, ticket = taken
            in_flight[task] = claimed
            self._holding += 1
            outcome: Outcome | None = None
            try:
                done, outcome = await self._attempt(claimed)
            except asyncio.CancelledError:
                self._settle_cancelled(claimed)
                raise
            except Exception as exc:  # a bug must not lose the message: retry it later
                log.exception("the send of a message crashed", extra=message_log.ids(claimed))
                done = decisions.internal_error(claimed, exc, retry_at=self._retry_later())
            finally:
                self.gate.settle(ticket, outcome)  # a probe always comes back
                in_flight[task] = None
                self._holding -= 1
            outbox.put(done)

    def _retry_later(self) -> datetime:
        return self._clock() + timedelta(seconds=self._settings.retry_base_seconds)

    def _next_ready(self) -> tuple[Claimed, Ticket] | None:
        """The next claimed message, if the provider's state lets one go out now."""
        ready = self._ready
        if self._stopping or not ready:
            return None  # the chain ends, which wakes the loop
        ticket = self.gate.admit()
        if ticket is None:
            return None
        claimed = ready.popleft()
        if (  # time to claim more: wake the loop (only then, not for every message)
            self._claiming is None
            and self._empty_claim_at is None
            and self._hold - self._holding - len(ready) > self._claim_threshold
        ):
            self._wake_loop.set()
        return claimed, ticket

    def _settle_cancelled(self, claimed: Claimed) -> None:
        """A request stopped before its answer: its end_time passed, or its mailing went."""
        if self._releasing:
            return  # a graceful stop gives it back instead
        mailing = self._mailings.get(claimed.mailing_id)
        if mailing is not None and mailing.end_time <= self._clock():
            self.outbox.put(decisions.expired(claimed))
        else:  # cancelled or deleted: the API settled it; this changes nothing then
            self.outbox.put(decisions.give_back(claimed, at=self._clock()))

    # --- claims -------------------------------------------------------------------------------

    # --- halts and the auto-pause -------------------------------------------------------------

    def halt(self, kind: HaltKind, ident: int) -> None:
        """Start no request for this mailing or client from now on (its change has committed).

        Requests already on their way finish; the next refresh stops those of a cancelled or
        deleted mailing, and a paused one's claimed messages go back to the queue as chains
        reach them.
        """
        now = self._monotonic()
        if kind == "client":
            self._blocked[ident] = now
            return
        self._halted[ident] = now
        self._texts.pop(ident, None)
        self._ends.pop(ident, None)
        if ident in self._mailings:
            self._mailings = {k: v for k, v in self._mailings.items() if k != ident}
        self._wake.set()

    def _is_blocked(self, claimed: Claimed) -> bool:
        """Whether the message was claimed before its client opted out or was deleted (a claim
        that began later cannot have taken it: the opt-out had cancelled it by then)."""
        halted_at = self._blocked.get(claimed.client_id or 0)
        return halted_at is not None and claimed.claimed_at <= halted_at

    def _prune_halts(self, now: float) -> None:
        """Forget halts no refresh or claimed message can still need: a refresh that began after
        a halt sees its change, and messages claimed before it are gone within the hold time."""
        if self._halted:
            self._halted = {k: t for k, t in self._halted.items() if now - t < HALT_MEMORY}
        if self._blocked:
            # Nothing held and no claim under way: no message claimed before a halt is left.
            if not (self._ready or self._in_flight or self._claiming):
                self._blocked = {}
            else:
                self._blocked = {k: t for k, t in self._blocked.items() if now - t < HALT_MEMORY}

    def _watch_outcome(self, mailing_id: int, outcome: Outcome) -> None:
        """Count the answers that speak of this mailing: accepted, or refused for good. A
        provider that is down, throttles or refuses the token fails every mailing alike; the
        circuit breaker and the 401 pause deal with that, and resume by themselves."""
        assert self._watch is not None
        if outcome.verdict is not Verdict.sent and outcome.verdict is not Verdict.fail:
            return
        reason = self._watch.record(mailing_id, failed=outcome.verdict is Verdict.fail)
        if reason is None or mailing_id in self._pausing or mailing_id not in self._mailings:
            return
        self.halt("mailing", mailing_id)
        task = asyncio.create_task(self._auto_pause(mailing_id, reason))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _auto_pause(self, mailing_id: int, reason: str) -> None:
        """Store the pause, trying again until it is stored (or the mailing no longer runs);
        meanwhile this worker sends nothing more for it."""
        self._pausing.add(mailing_id)
        delay = 0.1
        try:
            while not self._stopping:
                try:
                    async with transaction(self._sessionmaker) as session:
                        # Logged (WARNING) by pause_by_engine once stored.
                        await pause_by_engine(session, mailing_id, reason=reason, now=self._clock())
                except Exception:
                    log.exception(
                        "the auto-pause of a mailing failed; trying again",
                        extra={"mailing_id": mailing_id},
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                return
        finally:
            self._pausing.discard(mailing_id)
            self._wake.set()

    async def _refresh(self, force: bool = False) -> None:
        began = self._monotonic()
        if not force and began - self._refreshed < REFRESH_SECONDS:
            return
        async with transaction(self._sessionmaker) as session:
            active = await claims.active_mailings(session)
            self._prune_halts(began)
            halted, pausing = self._halted, self._pausing
            if halted or pausing:
                # Halted after this refresh began (the database may predate its change), or
                # being paused by this worker: not running as far as this worker is concerned.
                active = [
                    m
                    for m in active
                    if halted.get(m.id, float("-inf")) < began and m.id not in pausing
                ]
            self._know({m.id: m for m in active})
            if self._window_said:
                self._window_said = {
                    k: v for k, v in self._window_said.items() if k in self._mailings
                }
            if self._watch is not None:
                self._watch.retain(self._mailings)
            self._texts = {
                m.id: self._texts.get(m.id) or ProviderClient.encode_text(m.text) for m in active
            }
            self._refreshed = self._monotonic()
            now = self._clock()
            # Requests on their way stop when their mailing was cancelled, deleted or has
            # ended, or its end_time passed; a paused (or pausing) mailing's finish and count.
            stopping: list[tuple[asyncio.Task[None], Claimed]] = []
            unknown: list[tuple[asyncio.Task[None], Claimed]] = []
            for task, claimed in self._in_flight.items():
                if claimed is None:
                    continue
                mailing = self._mailings.get(claimed.mailing_id)
                if mailing is None:
                    if claimed.mailing_id not in pausing:
                        unknown.append((task, claimed))
                elif mailing.end_time <= now:
                    stopping.append((task, claimed))
            if unknown:
                ended = await claims.ended_mailings(
                    session, {claimed.mailing_id for _task, claimed in unknown}
                )
                stopping += [(t, c) for t, c in unknown if c.mailing_id in ended]
            for task, claimed in stopping:
                if self._in_flight.get(task) is claimed:  # still that request, not a later one
                    task.cancel()

    async def _claim(self, limit: int) -> int:
        began = self._monotonic()
        now = self._clock()
        lease = now + timedelta(seconds=self.leases.seconds)
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
            started = time.perf_counter()
            async with self._claims.unit() as session:
                timing, items = await claims.claim(
                    session,
                    mailing_id=mailing_id,
                    worker=self.worker,
                    now=now,
                    lease_until=lease,
                    limit=want,
                )
            self._metrics.claim_seconds.observe(time.perf_counter() - started)
            claimed_total += len(items)
            mailing = self._mailings.get(mailing_id)
            if mailing is not None and timing is not None:
                mailing = mailing.timed(timing)  # the freshest
                if mailing != self._mailings.get(mailing_id):
                    self._know({**self._mailings, mailing_id: mailing})
            elif timing is None:
                mailing = None
            self.leases.claimed(items, began=began)
            for item in items:
                self._sort(item, mailing, now)
        self._wake_loop.set()  # let the loop start what was claimed
        return claimed_total

    def _sort(self, item: Claimed, mailing: ActiveMailing | None, now: datetime) -> None:
        """A claimed message goes to the ready queue, or is settled at once without a request."""
        settled: Done | None
        if mailing is None:
            # Cancelled or deleted as it was claimed: back to the queue, where the cancel (or
            # delete) settles it.
            settled = decisions.give_back(item, at=now)
        else:
            try:
                settled = decisions.before_send(item, mailing, now)
            except Exception as exc:  # e.g. a time zone the system no longer knows
                log.exception("a message cannot be sent; it fails", extra=message_log.ids(item))
                settled = decisions.unpreparable(item, exc)
        if settled is None:
            self._ready.append(item)
            return
        if settled.status is MessageStatus.pending and mailing is not None:
            self._waits_for_window(mailing.id, settled.next_attempt_at, now)
        self.outbox.put(settled)

    def _waits_for_window(self, mailing_id: int, opening: datetime | None, now: datetime) -> None:
        """A message was put off until its client's send window opens: say so once per mailing
        and closed window (not once per message)."""
        said = self._window_said.get(mailing_id)
        if opening is None or (said is not None and said > now):
            return
        self._window_said[mailing_id] = opening
        log.info(
            "mailing waits for its send window",
            extra={"mailing_id": mailing_id, "opens_at": opening},
        )

    def _start_ready(self) -> None:
        """Start send chains for claimed messages while there are free slots (chains between two
        messages take the next ones first)."""
        between = len(self._in_flight) - self._holding
        free = min(self._concurrency - len(self._in_flight), len(self._ready) - between)
        if free <= 0:
            return
        budget = self.gate.budget()
        if budget == 0:
            return
        if budget == 1:  # a probe after a pause: exactly one
            free = 1
        for _ in range(free):
            task = asyncio.create_task(self._chain())
            self._in_flight[task] = None
            task.add_done_callback(self._chain_ended)

    def _chain_ended(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        self._wake_loop.set()

    # --- the loop -----------------------------------------------------------------------------

    async def step(self, stop: asyncio.Event) -> None:
        """One turn of the loop. Claims run in the background while sends go on, so the time a
        claim takes in the database never leaves the provider idle."""
        await self._refresh(force=self._wake.is_set())
        self._wake.clear()
        self._start_ready()
        if self._claiming is not None and self._claiming.done():
            claiming, self._claiming = self._claiming, None
            claimed = claiming.result()  # a database error surfaces here
            self._empty_claim_at = self._monotonic() if claimed == 0 else None
            self._start_ready()
        room = self._hold - self._holding - len(self._ready)
        budget = self.gate.budget()
        if (
            self._claiming is None
            and budget != 0
            and self._mailings
            and room >= self._claim_threshold
            and not self._recently_empty()
        ):
            limit = min(room, self._batch) if budget < 0 else 1
            self._claiming = asyncio.create_task(self._claim(limit))
        if budget == 0 and self._ready and self._claiming is None:
            self._give_back_ready()
        self._loops.done("sender")
        if self._claiming is not None or self._in_flight or self._ready:
            self._busy = self._busy or bool(self._in_flight or self._ready)
            self._wake_loop.clear()
            waits: list[asyncio.Future[Any]] = [
                asyncio.ensure_future(self._wake_loop.wait()),
                asyncio.ensure_future(self._wake.wait()),  # a change: look at it at once
                asyncio.ensure_future(stop.wait()),
            ]
            if self._claiming is not None:
                waits.append(self._claiming)
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
                await self.outbox.flush()
                self._on_idle()
            await self._idle_wait(stop)

    def _give_back_ready(self) -> None:
        """The provider is paused: return claimed messages to the queue rather than hold their
        leases through a long pause (another worker may take them when it resumes)."""
        now = self._clock()
        while self._ready:
            self.outbox.put(decisions.give_back(self._ready.popleft(), at=now))

    def _recently_empty(self) -> bool:
        """Whether a claim just found nothing due. Then, with nothing under way, the loop goes
        idle (sleeping until the next due time or a change); with sends under way, it asks
        again only after a short pause. Either way it never spins on empty claims."""
        if self._empty_claim_at is None:
            return False
        if not (self._in_flight or self._ready):
            return True
        return self._monotonic() - self._empty_claim_at < EMPTY_CLAIM_PAUSE

    async def _idle_wait(self, stop: asyncio.Event) -> None:
        """Nothing to do: sleep until the next message is due, a change, or the poll interval."""
        wait = self._settings.engine_poll_seconds
        if self._mailings:
            async with transaction(self._sessionmaker) as session:
                due = await claims.next_due(session, list(self._mailings))
            if due is not None:
                wait = min(wait, max(0.0, (due - self._clock()).total_seconds()))
        gate_wait = self.gate.seconds_until_admit()
        if gate_wait:
            wait = min(wait, max(0.01, gate_wait))
        if wait <= 0:
            return
        await _wait_any((self._wake, stop), wait)
        if self._wake.is_set():
            self._wake.clear()
            await self._refresh(force=True)

    async def run(self, stop: asyncio.Event) -> None:
        self._stopping = self._releasing = False
        writer = asyncio.create_task(self.outbox.run(), name="writer")
        heartbeat = asyncio.create_task(self.leases.run(stop), name="leases")
        try:
            while not stop.is_set():
                try:
                    await self.step(stop)
                    for task in (writer, heartbeat):
                        if task.done() and not stop.is_set():  # each handles its own errors
                            raise RuntimeError(f"the {task.get_name()} loop ended")
                except Exception as exc:
                    if self._claiming is not None and self._claiming.done():
                        self._claiming = None  # its error is this one
                    backoff = self._loops.failed("sender", exc)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), backoff)
        finally:
            await self._drain(writer, heartbeat)

    async def _drain(self, writer: asyncio.Task[None], heartbeat: asyncio.Task[None]) -> None:
        """Graceful stop: let requests in flight finish (bounded), store every outcome, and give
        back whatever could not finish, so nothing is lost."""
        self._stopping = True  # chains finish their current message and take no other
        if self._claiming is not None:
            with contextlib.suppress(Exception):
                await self._claiming
            self._claiming = None
        leftover = list(self._ready)
        self._ready.clear()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=self._timeout + 1)
        self._releasing = True
        leftover += [item for item in self._in_flight.values() if item is not None]
        tasks = list(self._in_flight)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        now = self._clock()
        for item in leftover:
            self.outbox.put(decisions.give_back(item, at=now))
        if self._background:  # an auto-pause being stored
            await asyncio.wait(set(self._background), timeout=DRAIN_WRITE_SECONDS)
        heartbeat.cancel()
        await self._claims.close()
        await self.outbox.close(within=DRAIN_WRITE_SECONDS)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await heartbeat


async def _wait_any(events: tuple[asyncio.Event, ...], seconds: float) -> None:
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
