"""Supervision of the engine's loops: each one reports every round it completes, and a loop that
has not completed one for too long — blocked on a lock, failing at every try, or gone — makes the
engine unhealthy (``/health`` answers 503 and says which loop and why)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.exc import InterfaceError, OperationalError

log = logging.getLogger("notiflow.engine")

BACKOFF_MAX = 10.0


@dataclass(slots=True)
class _Loop:
    period: float  # the longest gap between two rounds of a healthy loop
    last_round: float
    failures: int = 0
    error: str | None = None


def describe(exc: BaseException) -> str:
    """One line about an error, for logs and /health (never with bound parameters)."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__


def is_outage(exc: BaseException) -> bool:
    """Whether an error says the database (or the network to it) is unavailable: expected now and
    then, retried without a traceback. Anything else is a bug or bad data, logged in full."""
    return isinstance(exc, OperationalError | InterfaceError | OSError | TimeoutError)


class Loops:
    """The rounds of every loop of one engine."""

    def __init__(
        self, *, stall_seconds: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._stall = stall_seconds
        self._monotonic = monotonic
        self._loops: dict[str, _Loop] = {}

    def register(self, name: str, *, period: float) -> None:
        self._loops[name] = _Loop(period=period, last_round=self._monotonic())

    def done(self, name: str) -> None:
        """A round of ``name`` completed."""
        loop = self._loops[name]
        loop.last_round = self._monotonic()
        if loop.failures:
            loop.failures = 0
            loop.error = None

    def failed(self, name: str, exc: BaseException) -> float:
        """A round of ``name`` failed: log it and return how long to back off."""
        loop = self._loops.setdefault(name, _Loop(period=float("inf"), last_round=0.0))
        loop.failures += 1
        loop.error = describe(exc)
        backoff: float = min(BACKOFF_MAX, 0.25 * 2.0 ** min(loop.failures - 1, 10))
        log.error(
            "engine loop failed: retrying",
            extra={"loop": name, "error": loop.error, "retry_in_seconds": backoff},
            exc_info=None if is_outage(exc) else exc,  # an outage needs no traceback
        )
        return backoff

    def error(self) -> str | None:
        """The last error of a loop that is failing now, if any."""
        return next((loop.error for loop in self._loops.values() if loop.error), None)

    def problems(self) -> list[str]:
        """Loops that have not completed a round for longer than they may."""
        now = self._monotonic()
        found = []
        for name, loop in self._loops.items():
            late = now - loop.last_round
            if late > max(self._stall, 3 * loop.period):
                why = f" (last error: {loop.error})" if loop.error else ""
                found.append(f"{name} has not completed a round for {late:.0f} s{why}")
        return found


async def supervise(
    name: str, run: Callable[[], Awaitable[None]], *, stop: asyncio.Event, loops: Loops
) -> None:
    """Run ``run`` until ``stop``; restart it, with back-off, if it ever ends or raises early.

    Every loop handles the errors of its own rounds; this is the net under the net.
    """
    while True:
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            backoff = loops.failed(name, exc)
        else:
            if stop.is_set():
                return
            backoff = loops.failed(name, RuntimeError(f"{name} ended unexpectedly"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), backoff)
        if stop.is_set():
            return


async def pause(stop: asyncio.Event, seconds: float, *, wake: asyncio.Event | None = None) -> None:
    """Wait ``seconds`` between two rounds of a loop, or less if ``stop`` (or ``wake``) is set."""
    if seconds <= 0 or stop.is_set():
        return
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
