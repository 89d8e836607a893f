"""A circuit breaker over the provider's recent answers.

Closed: requests flow. When at least ``min_requests`` of the last ``window`` requests are known
and ``failure_ratio`` of them failed, it opens: no request goes out for a cool-down, then one probe
may go (half-open). A good probe closes it; a bad one opens it again for twice as long. Who sends
the probe, and that its answer (or its absence) always comes back, is the gate's business
(``delivery.gate``).
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
        self.state = BreakerState.closed
        self.trips = 0

    def record(self, ok: bool) -> None:
        """The answer to a request sent while closed; it may open the breaker."""
        if self.state is not BreakerState.closed:
            return  # sent before it opened: not news
        results = self._results
        if len(results) == results.maxlen and not results[0]:
            self._failures -= 1
        results.append(ok)
        if not ok:
            self._failures += 1
            if len(results) >= self._min_requests and self._failures >= self._ratio * len(results):
                self._open(double=False)

    def ready_to_probe(self) -> bool:
        """Whether a probe may go now (the cool-down is over); half-open from then on."""
        if self.state is BreakerState.open:
            if self._monotonic() - self._opened_at < self._cooldown:
                return False
            self.state = BreakerState.half_open
        return self.state is BreakerState.half_open

    def probe_result(self, ok: bool) -> None:
        if self.state is BreakerState.closed:
            return
        if ok:
            self._close()
        else:
            self._open(double=True)

    def seconds_until_probe(self) -> float:
        if self.state is not BreakerState.open:
            return 0.0
        return max(0.0, self._cooldown - (self._monotonic() - self._opened_at))

    def _open(self, *, double: bool) -> None:
        if double:
            self._cooldown = min(self._max_cooldown, self._cooldown * 2)
        else:
            self._cooldown = self._base_cooldown
            self.trips += 1
        self.state = BreakerState.open
        self._opened_at = self._monotonic()

    def _close(self) -> None:
        self.state = BreakerState.closed
        self._cooldown = self._base_cooldown
        self._results.clear()
        self._failures = 0
