"""A circuit breaker over the provider's recent answers.

Closed: requests flow. When at least ``min_requests`` of the last ``window`` requests are known
and ``failure_ratio`` of them failed, it opens: no request goes out for a cool-down, then one probe
is let through (half-open). A good probe closes it; a bad one opens it again for twice as long.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    closed = "closed"
    open = "open"
    half_open = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        *,
        window: int = 50,
        min_requests: int = 20,
        failure_ratio: float = 0.5,
        cooldown: float = 1.0,
        max_cooldown: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._results: deque[bool] = deque(maxlen=window)
        self._failures = 0
        self._min_requests = min(min_requests, window)
        self._ratio = failure_ratio
        self._base_cooldown = cooldown
        self._max_cooldown = max(cooldown, max_cooldown)
        self._cooldown = cooldown
        self._monotonic = monotonic
        self._opened_at = 0.0
        self._probe_out = False
        self.state = BreakerState.closed
        self.trips = 0

    def _push(self, ok: bool) -> None:
        if len(self._results) == self._results.maxlen and not self._results[0]:
            self._failures -= 1
        self._results.append(ok)
        if not ok:
            self._failures += 1

    def allow(self) -> int:
        """How many new requests may start now: unlimited (-1), one probe (1) or none (0)."""
        if self.state is BreakerState.closed:
            return -1
        if self.state is BreakerState.open:
            if self._monotonic() - self._opened_at < self._cooldown:
                return 0
            self.state = BreakerState.half_open
            self._probe_out = False
        if self._probe_out:
            return 0
        return 1

    def probe_started(self) -> None:
        if self.state is BreakerState.half_open:
            self._probe_out = True

    def seconds_until_probe(self) -> float:
        if self.state is not BreakerState.open:
            return 0.0
        return max(0.0, self._cooldown - (self._monotonic() - self._opened_at))

    def record(self, ok: bool) -> None:
        if self.state is BreakerState.half_open:
            if ok:
                self._close()
            else:
                self._open(double=True)
            return
        self._push(ok)
        if (
            self.state is BreakerState.closed
            and len(self._results) >= self._min_requests
            and self._failures >= self._ratio * len(self._results)
        ):
            self._open(double=False)

    def _open(self, *, double: bool) -> None:
        if double:
            self._cooldown = min(self._max_cooldown, self._cooldown * 2)
        else:
            self._cooldown = self._base_cooldown
            self.trips += 1
        self.state = BreakerState.open
        self._opened_at = self._monotonic()
        self._probe_out = False

    def _close(self) -> None:
        self.state = BreakerState.closed
        self._cooldown = self._base_cooldown
        self._results.clear()
        self._failures = 0
        self._probe_out = False
