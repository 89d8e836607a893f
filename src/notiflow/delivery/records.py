"""What the engine passes around in memory: a running mailing, a claimed message, an outcome."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time

from notiflow.models import MessageStatus


@dataclass(frozen=True, slots=True)
class Timing:
    """When a running mailing may send: the fields that may change while it runs."""

    end_time: datetime
    window_start: time | None
    window_end: time | None


@dataclass(frozen=True, slots=True)
class ActiveMailing:
    """What the sender needs to know of a running mailing."""

    id: int
    text: str
    end_time: datetime
    window_start: time | None
    window_end: time | None

    def timed(self, timing: Timing) -> ActiveMailing:
        return replace(
            self,
            end_time=timing.end_time,
            window_start=timing.window_start,
            window_end=timing.window_end,
        )


@dataclass(slots=True)
class Claimed:
    """A message this worker holds (status ``sending``, ``claimed_by`` this worker)."""

    id: int
    mailing_id: int
    client_id: int | None
    attempts: int
    phone: str | None  # None: the client was deleted
    timezone: str | None
    opted_out: bool = False  # the client had opted out when the message was claimed
    # Monotonic time until which the lease taken by the claim is this worker's (renewals of
    # every lease the worker holds extend it further; see Sender).
    lease_deadline: float = 0.0
    claimed_at: float = 0.0  # monotonic: when the claim that took it began


@dataclass(slots=True)
class Done:
    """The new state of a claimed message, as the sender decided it."""

    id: int
    mailing_id: int
    status: MessageStatus
    attempts: int  # after this round
    attempted: bool  # whether a request was made this round
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    last_error: str | None = None  # None keeps the previous one
    error_kind: str | None = None  # counted in the mailing's error breakdown when attempted
