"""The gate in front of the provider: the circuit breaker, the pause after a 401/403, and the one
probe either of them lets through.

Every request passes ``admit`` and, whatever becomes of it, ends with ``settle`` (in a
``finally``): a probe whose message was cancelled, deleted, expired or crashed on the way is
given back, so a probe can never be lost and leave delivery stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import Enum

from notiflow.delivery.breaker import BreakerState, CircuitBreaker
from notiflow.delivery.policy import Outcome, Verdict

log = logging.getLogger("notiflow.engine")


class Ticket(Enum):
    """Leave to send one request: an ordinary one, or the one probe of a paused provider."""

    normal = "normal"
    probe = "probe"


class ProviderGate:
    def __init__(
        self,
        *,
        breaker: CircuitBreaker,
        auth_retry_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.breaker = breaker
        self._auth_retry = auth_retry_seconds
        self._monotonic = monotonic
        self._auth_paused_until: float | None = None
        self._probe_out = False
        self.auth_error: str | None = None
        self.last_error: str | None = None
        self.failed_attempts = 0

    @property
    def state(self) -> str:
        """ok · unauthorized · circuit_open · circuit_half_open"""
        if self._auth_paused_until is not None:
            return "unauthorized"
        if self.breaker.state is BreakerState.open:
            return "circuit_open"
        if self.breaker.state is BreakerState.half_open:
            return "circuit_half_open"
        return "ok"

    @property
    def probe_out(self) -> bool:
        return self._probe_out

    def budget(self) -> int:
        """How many requests may start now: any (-1), one probe (1) or none (0)."""
        if self._probe_out:
            return 0
        if self._auth_paused_until is not None:
            return 1 if self._monotonic() >= self._auth_paused_until else 0
        breaker = self.breaker
        if breaker.state is BreakerState.closed:
            return -1
        before = breaker.state
        ready = breaker.ready_to_probe()
        if breaker.state is not before:
            log.warning(
                "circuit breaker half-open: one probe goes to the provider",
                extra={"breaker": breaker.state.value, "previous": before.value},
            )
        return 1 if ready else 0

    def admit(self) -> Ticket | None:
        budget = self.budget()
        if budget < 0:
            return Ticket.normal
        if budget == 0:
            return None
        self._probe_out = True
        return Ticket.probe

    def seconds_until_admit(self) -> float | None:
        """How long until a request may start (0: now); None while waiting for the probe."""
        if self._probe_out:
            return None
        if self._auth_paused_until is not None:
            return max(0.0, self._auth_paused_until - self._monotonic())
        return self.breaker.seconds_until_probe()

    def settle(self, ticket: Ticket, outcome: Outcome | None) -> None:
        """The end of an admitted request: its outcome, or None if no answer came (it was never
        sent, or was stopped on the way)."""
        if ticket is Ticket.probe:
            self._probe_out = False
        if outcome is None:
            return
        if outcome.verdict is Verdict.unauthorized:
            if self._auth_paused_until is None:
                log.error(
                    "the provider refused the token: sending is paused, messages stay pending; "
                    "check NOTIFLOW_PROVIDER_TOKEN",
                    extra={
                        "provider_state": "unauthorized",
                        "error": outcome.detail,
                        "probe_every_seconds": self._auth_retry,
                    },
                )
            if self._auth_paused_until is None or ticket is Ticket.probe:
                self._auth_paused_until = self._monotonic() + self._auth_retry
            self.auth_error = outcome.detail
            return
        if ticket is Ticket.probe and self._auth_paused_until is not None:
            self._auth_paused_until = None
            self.auth_error = None
            log.warning(
                "the provider accepts the token again: sending resumes",
                extra={"provider_state": "ok", "previous": "unauthorized"},
            )
        ok = not outcome.provider_failed
        if not ok:
            self.failed_attempts += 1
            self.last_error = outcome.detail
        breaker = self.breaker
        before = breaker.state
        if before is BreakerState.closed:
            breaker.record(ok)
        elif ticket is Ticket.probe:
            breaker.probe_result(ok)
        if breaker.state is not before:
            fields: dict[str, object] = {"breaker": breaker.state.value, "previous": before.value}
            if breaker.state is BreakerState.open:
                fields.update(error=outcome.detail, pause_seconds=breaker.seconds_until_probe())
                if before is BreakerState.closed:
                    log.warning("circuit breaker open: the provider is failing", extra=fields)
                else:
                    log.warning("circuit breaker open again: the probe failed", extra=fields)
            elif breaker.state is BreakerState.closed:
                log.warning("circuit breaker closed: the provider answers again", extra=fields)
