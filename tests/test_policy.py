"""The retry policy, the answer classification and the circuit breaker, as tables of cases."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from notiflow.delivery.breaker import BreakerState, CircuitBreaker
from notiflow.delivery.policy import (
    RetryPolicy,
    Verdict,
    classify_exception,
    classify_response,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "body", "verdict", "error"),
    [
        (200, b'{"code": 0, "message": "OK"}', Verdict.sent, None),
        (200, b'{"code": 0}', Verdict.sent, None),
        (200, b'{"code": 1, "message": "busy"}', Verdict.retry, "invalid response"),
        (200, b'{"code": false}', Verdict.retry, "invalid response"),
        (200, b'{"code": "0"}', Verdict.retry, "invalid response"),
        (200, b"[0]", Verdict.retry, "invalid response"),
        (200, b"OK", Verdict.retry, "invalid response"),
        (200, b"", Verdict.retry, "invalid response"),
        (200, b"\xff\xfe", Verdict.retry, "invalid response"),
        (500, b"oops", Verdict.retry, "HTTP 500"),
        (502, b"", Verdict.retry, "HTTP 502"),
        (503, b"", Verdict.retry, "HTTP 503"),
        (429, b"", Verdict.retry, "HTTP 429"),
        (408, b"", Verdict.retry, "HTTP 408"),
        (400, b'{"code": 400}', Verdict.fail, "HTTP 400"),
        (404, b"", Verdict.fail, "HTTP 404"),
        (422, b"", Verdict.fail, "HTTP 422"),
        (401, b"", Verdict.unauthorized, "HTTP 401"),
        (403, b"", Verdict.unauthorized, "HTTP 403"),
        (204, b"", Verdict.retry, "HTTP 204"),
        (302, b"", Verdict.retry, "HTTP 302"),
    ],
)
def test_classify_response(status: int, body: bytes, verdict: Verdict, error: str | None) -> None:
    outcome = classify_response(status, body, now=NOW)
    assert outcome.verdict is verdict
    assert outcome.error == error
    assert outcome.provider_failed == (verdict is Verdict.retry)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("0", 0.0), ("Sun, 22 Nov 2026 12:00:30 GMT", 30.0), ("soon", None), (None, None)],
)
def test_retry_after(header: str | None, seconds: float | None) -> None:
    assert classify_response(429, b"", retry_after=header, now=NOW).retry_after == seconds


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (TimeoutError(), "timeout"),
        (aiohttp.ServerDisconnectedError(), "connection lost"),
        (aiohttp.ClientPayloadError("cut"), "invalid response"),
        (ConnectionResetError(), "connection error"),
    ],
)
def test_classify_exception(exc: BaseException, error: str) -> None:
    outcome = classify_exception(exc)
    assert outcome.verdict is Verdict.retry
    assert outcome.error == error


def test_classify_exception_lets_bugs_through() -> None:
    with pytest.raises(ZeroDivisionError):
        classify_exception(ZeroDivisionError())


@pytest.mark.parametrize(
    ("attempts", "low", "high"),
    [
        (1, 0.5, 1.0),
        (2, 1.0, 2.0),
        (3, 2.0, 4.0),
        (9, 128.0, 256.0),
        (10, 150.0, 300.0),
        (50, 150.0, 300.0),
    ],
)
def test_backoff_is_exponential_jittered_and_capped(attempts: int, low: float, high: float) -> None:
    policy = RetryPolicy(base_seconds=1, max_seconds=300)
    rng = random.Random(1)
    delays = [policy.delay(attempts, rng) for _ in range(200)]
    assert all(low <= d <= high for d in delays)
    assert len(set(delays)) > 100  # jittered, so retries of many messages spread out


def test_retry_after_is_honoured_but_capped() -> None:
    policy = RetryPolicy(base_seconds=1, max_seconds=60)
    rng = random.Random(1)
    at = policy.next_attempt(attempts=1, now=NOW, retry_after=30, rng=rng)
    assert at == NOW + timedelta(seconds=30)
    capped = policy.next_attempt(attempts=1, now=NOW, retry_after=3600, rng=rng)
    assert capped == NOW + timedelta(seconds=60)


@pytest.mark.parametrize(
    ("limit", "attempts", "gives_up"), [(0, 100, False), (3, 2, False), (3, 3, True)]
)
def test_max_attempts(limit: int, attempts: int, gives_up: bool) -> None:
    assert RetryPolicy(max_attempts=limit).gives_up(attempts) is gives_up


def _state(breaker: CircuitBreaker) -> BreakerState:
    return breaker.state


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_probes_and_closes() -> None:
    time = FakeTime()
    breaker = CircuitBreaker(
        window=10, min_requests=5, failure_ratio=0.5, cooldown=1, monotonic=time
    )
    for _ in range(4):
        breaker.record(False)
    assert _state(breaker) is BreakerState.closed  # too few requests to judge
    breaker.record(False)
    assert _state(breaker) is BreakerState.open
    assert not breaker.ready_to_probe()
    breaker.record(True)  # an answer to a request sent before it opened: not news
    assert _state(breaker) is BreakerState.open
    time.now = 1.01
    assert breaker.ready_to_probe()  # half-open: a probe may go
    assert _state(breaker) is BreakerState.half_open
    breaker.probe_result(False)  # the probe failed: open again, twice as long
    assert _state(breaker) is BreakerState.open
    time.now = 2.5
    assert not breaker.ready_to_probe()
    assert breaker.seconds_until_probe() == pytest.approx(0.51)
    time.now = 3.1
    assert breaker.ready_to_probe()
    breaker.probe_result(True)
    assert _state(breaker) is BreakerState.closed
    assert breaker.trips == 1


def test_breaker_stays_closed_below_the_ratio() -> None:
    breaker = CircuitBreaker(window=10, min_requests=5, failure_ratio=0.5, monotonic=FakeTime())
    for i in range(100):
        breaker.record(i % 3 != 0)  # a third fails
    assert _state(breaker) is BreakerState.closed
