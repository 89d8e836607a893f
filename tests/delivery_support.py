"""Support for the delivery tests: a live clock, the sandbox in its own thread, engines, waits."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from notiflow.sandbox.server import FaultConfig, Received, Sandbox

SANDBOX_TOKEN = "sandbox-token"
# The engine decides before a request starts (not after a pause, an opt-out or end_time); the
# sandbox stamps it when it arrives, up to this much later on a busy machine.
ARRIVAL_LAG = 0.05

# Settings that make the engine react in tenths of a second instead of seconds.
FAST = {
    "provider_timeout": 1.0,
    "retry_base_seconds": 0.05,
    "retry_max_seconds": 0.4,
    "send_lease_seconds": 3.0,
    "breaker_cooldown_seconds": 0.2,
    "engine_poll_seconds": 0.2,
    "auth_retry_seconds": 0.3,
    "send_concurrency": 32,
    "send_batch_size": 100,
}


class LiveClock:
    """Real time, shifted by an offset a test can move forward (for send windows)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    @property
    def now(self) -> datetime:
        return self()

    def advance(self, **delta: float) -> datetime:
        self.offset += timedelta(**delta)
        return self()

    def set(self, when: datetime) -> None:
        self.offset = when - datetime.now(UTC)


class ThreadedSandbox:
    """The sandbox provider served from a thread of its own, so in-process engines and worker
    subprocesses alike talk to it over real HTTP on 127.0.0.1."""

    def __init__(self, seed: int = 7) -> None:
        self._loop = asyncio.new_event_loop()
        self.sandbox = Sandbox(FaultConfig(token=SANDBOX_TOKEN), seed=seed)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.url = self._call(self.sandbox.start("127.0.0.1", 0))

    def _call(self, coroutine: Awaitable[Any]) -> Any:
        """Run ``coroutine`` on the sandbox's loop and return once it has finished there."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)  # type: ignore[arg-type]

    def _do(self, function: Callable[..., Any], *args: Any) -> Any:
        """Call ``function`` on the sandbox's thread and return once it has run."""

        async def call() -> Any:
            return function(*args)

        return self._call(call())

    def configure(self, **changes: Any) -> None:
        self._do(self.sandbox.config.update, changes)

    def reset(self) -> None:
        self._do(self.sandbox.received.clear)
        defaults = FaultConfig(token=SANDBOX_TOKEN)
        self.configure(**{k: getattr(defaults, k) for k in defaults.__dataclass_fields__})

    def outage(self, seconds: float) -> None:
        """Refuse connections for ``seconds``, from the moment this returns."""
        self._call(self.sandbox.begin_outage(seconds))

    @property
    def received(self) -> list[Received]:
        return self._do(list, self.sandbox.received)  # type: ignore[no-any-return]

    def accepted(self) -> list[int]:
        return [e.id for e in self.received if e.outcome == "ok" and e.id is not None]

    def close(self) -> None:
        self._call(self.sandbox.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], *, within: float = 20.0, interval: float = 0.05
) -> None:
    """Poll ``predicate`` until it holds; fail the test when it does not ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        if await predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(interval)


async def wait_until(predicate: Callable[[], bool], *, within: float = 10.0) -> None:
    """``wait_for`` for a plain condition."""

    async def check() -> bool:
        return predicate()

    await wait_for(check, within=within)


ANSWER_LOST = {"timeout", "connection lost"}
# Attempts that may never have reached the provider: a timeout before the request got there (a
# busy machine), a kept-alive connection the provider had closed, a refused connection.
MAYBE_UNSEEN = ANSWER_LOST | {"connection refused", "connection error"}


def attempts(engine_log: Sequence[logging.LogRecord]) -> list[tuple[int, str | None]]:
    """(message id, error kind) of every attempt, from the engine's DEBUG ``send attempt`` line
    (its fields are attributes of the record)."""
    return [
        (record.message_id, record.error)  # type: ignore[attr-defined]
        for record in engine_log
        if record.name == "notiflow.engine" and record.msg == "send attempt"
    ]


def attempts_maybe_unseen(engine_log: Sequence[logging.LogRecord]) -> Counter[int]:
    """Per message, how many of its attempts ended in a way that may have left the provider
    without a request (from the engine's DEBUG line per attempt)."""
    return Counter(
        message_id for message_id, error in attempts(engine_log) if error in MAYBE_UNSEEN
    )


def assert_accepted_twice_only_when_the_answer_was_lost(
    sandbox: ThreadedSandbox, engine_log: Sequence[logging.LogRecord]
) -> None:
    """Nothing is sent twice, except a request that the provider took but whose answer never
    reached the engine (a timeout, a cut connection): the engine must then try again, and that
    message may be accepted twice — no more often than answers to it were lost.

    Both sides are checked: the engine's own record of each attempt (its DEBUG line per send),
    and the sandbox's log, where every request it took without the answer getting out must be
    one the engine saw as lost.
    """
    lost = Counter(message_id for message_id, error in attempts(engine_log) if error in ANSWER_LOST)
    received = sandbox.received
    accepted = Counter(e.id for e in received if e.outcome == "ok" and e.id is not None)
    for message_id, times in accepted.items():
        assert times - 1 <= lost[message_id], (message_id, times, lost[message_id])
    unanswered = Counter(
        e.id for e in received if e.outcome == "ok" and e.answered is False and e.id is not None
    )
    for message_id, times in unanswered.items():
        assert times <= lost[message_id], (message_id, times, lost[message_id])
