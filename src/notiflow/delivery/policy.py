"""What a provider answer means, and when to try again. The one place that decides.

- success: HTTP 200 with a JSON object whose ``code`` is 0;
- retry later: timeouts, connection errors, 5xx, 408, 429 (with ``Retry-After``), and a 200 whose
  body is not that JSON;
- fail at once: any other 4xx;
- unauthorized: 401/403 — the token is wrong; the engine pauses instead of burning the queue.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum

import aiohttp


class Verdict(StrEnum):
    sent = "sent"
    retry = "retry"
    fail = "fail"
    unauthorized = "unauthorized"


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    error: str | None = None  # a short kind, bounded in number: "HTTP 503", "timeout", …
    detail: str | None = None  # the longer story for the message's last_error
    retry_after: float | None = None
    status_code: int | None = None  # the provider's HTTP status; None: no answer came

    @property
    def provider_failed(self) -> bool:
        """Whether this outcome says the provider is unwell (for the circuit breaker)."""
        return self.verdict is Verdict.retry


SENT = Outcome(Verdict.sent, status_code=200)


def _retry_after(value: str | None, now: datetime | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# The usual good answers, known without parsing them (the parse costs more than the rest of
# the decision); any other body is parsed.
_OK_BODIES = frozenset({b'{"code":0,"message":"OK"}', b'{"code": 0, "message": "OK"}'})


def classify_response(
    status: int, body: bytes, *, retry_after: str | None = None, now: datetime | None = None
) -> Outcome:
    """``now`` reads a ``Retry-After`` date (the current time when None)."""
    if status == 200:
        if body in _OK_BODIES:
            return SENT
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return Outcome(
                Verdict.retry,
                "invalid response",
                "HTTP 200 with a body that is not JSON",
                status_code=status,
            )
        if isinstance(data, dict) and data.get("code") == 0 and not isinstance(data["code"], bool):
            return SENT
        return Outcome(
            Verdict.retry,
            "invalid response",
            f"HTTP 200 without code 0: {body[:200]!r}",
            status_code=status,
        )
    snippet = body[:200].decode("utf-8", "replace")
    detail = f"HTTP {status}: {snippet}" if snippet else f"HTTP {status}"
    if status in (401, 403):
        return Outcome(Verdict.unauthorized, f"HTTP {status}", detail, status_code=status)
    if status == 429 or status == 408 or status >= 500:
        return Outcome(
            Verdict.retry,
            f"HTTP {status}",
            detail,
            retry_after=_retry_after(retry_after, now),
            status_code=status,
        )
    if 400 <= status < 500:
        return Outcome(Verdict.fail, f"HTTP {status}", detail, status_code=status)
    # 1xx/2xx other than 200, 3xx: not what the API promises; try again later.
    return Outcome(Verdict.retry, f"HTTP {status}", detail, status_code=status)


def classify_exception(exc: BaseException) -> Outcome:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return Outcome(Verdict.retry, "timeout", "no answer before the timeout")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Outcome(Verdict.retry, "connection refused", f"cannot connect: {exc}")
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return Outcome(Verdict.retry, "connection lost", f"connection lost: {exc}")
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return Outcome(Verdict.retry, "invalid response", f"broken answer: {exc}")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return Outcome(Verdict.retry, "connection error", f"{type(exc).__name__}: {exc}")
    raise exc


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential back-off with jitter, capped; optionally a most number of attempts."""

    base_seconds: float = 1.0
    max_seconds: float = 300.0
    max_attempts: int = 0  # 0: no limit but the mailing's end_time

    def delay(self, attempts: int, rng: random.Random) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (1-based).

        Half of the exponential step is fixed and half is random ("equal jitter"), so retries of
        many messages spread out but never come back sooner than half the step.
        """
        step = min(self.max_seconds, self.base_seconds * 2.0 ** min(attempts - 1, 62))
        return step / 2 + rng.uniform(0, step / 2)

    def gives_up(self, attempts: int) -> bool:
        return self.max_attempts > 0 and attempts >= self.max_attempts

    def next_attempt(
        self,
        *,
        attempts: int,
        now: datetime,
        retry_after: float | None,
        rng: random.Random,
    ) -> datetime:
        delay = self.delay(attempts, rng)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_seconds))
        return now + timedelta(seconds=delay)
