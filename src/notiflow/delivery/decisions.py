"""Pure decisions of the sender: what becomes of a claimed message, before and after a request.

No I/O and no clock of their own: the sender passes the time in, so every rule is tested with
tables of cases (tests/test_decisions.py).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from notiflow.delivery.policy import Outcome, RetryPolicy, Verdict
from notiflow.delivery.records import ActiveMailing, Claimed, Done
from notiflow.delivery.window import next_opening
from notiflow.models import MessageStatus

LAST_ERROR_MAX = 500  # the width of messages.last_error

END_PASSED = "end_time passed before sending"
WINDOW_AFTER_END = "the send window does not open again before end_time"
CLIENT_DELETED = "client deleted"
CLIENT_OPTED_OUT = "client opted out"


def _error(text: str | None) -> str | None:
    return text if text is None or len(text) <= LAST_ERROR_MAX else text[:LAST_ERROR_MAX]


def expired(claimed: Claimed, reason: str = END_PASSED) -> Done:
    return Done(
        claimed.id,
        claimed.mailing_id,
        MessageStatus.expired,
        claimed.attempts,
        attempted=False,
        last_error=reason,
    )


def give_back(claimed: Claimed, *, at: datetime, reason: str | None = None) -> Done:
    """Back to the queue without an attempt, due at ``at`` (a write-back of it changes nothing if
    the message is no longer this worker's: cancelled, deleted or reclaimed meanwhile)."""
    return Done(
        claimed.id,
        claimed.mailing_id,
        MessageStatus.pending,
        claimed.attempts,
        attempted=False,
        next_attempt_at=at,
        last_error=_error(reason),
    )


def internal_error(claimed: Claimed, exc: BaseException, *, retry_at: datetime) -> Done:
    """A bug must not lose the message: it is tried again later, and the reason is kept."""
    return give_back(claimed, at=retry_at, reason=f"internal error: {exc!r}")


def unpreparable(claimed: Claimed, exc: BaseException) -> Done:
    """A message that cannot even be prepared (e.g. its client's time zone is unknown to this
    system) would fail the same way at every try: it fails now, saying why."""
    return Done(
        claimed.id,
        claimed.mailing_id,
        MessageStatus.failed,
        claimed.attempts,
        attempted=False,
        last_error=_error(f"cannot be sent: {exc}"),
    )


def before_send(claimed: Claimed, mailing: ActiveMailing, now: datetime) -> Done | None:
    """Settle a claimed message that must not be sent now; None if it should be sent."""
    if claimed.phone is None or claimed.opted_out:
        return Done(
            claimed.id,
            claimed.mailing_id,
            MessageStatus.cancelled,
            claimed.attempts,
            attempted=False,
            last_error=CLIENT_DELETED if claimed.phone is None else CLIENT_OPTED_OUT,
        )
    if now >= mailing.end_time:
        return expired(claimed)
    if mailing.window_start is not None and mailing.window_end is not None:
        opening = next_opening(
            now,
            start=mailing.window_start,
            end=mailing.window_end,
            timezone=claimed.timezone or "UTC",
        )
        if opening is not None:
            if opening >= mailing.end_time:
                return expired(claimed, WINDOW_AFTER_END)
            return give_back(claimed, at=opening)  # waiting for the window is not an attempt
    return None


def after_send(
    claimed: Claimed,
    outcome: Outcome,
    *,
    now: datetime,
    end_time: datetime | None,
    policy: RetryPolicy,
    rng: random.Random,
    auth_retry_seconds: float,
) -> Done:
    """The new state of a message after one request, as the retry policy decides.

    ``end_time`` is the mailing's, or None if it is no longer running.
    """
    attempts = claimed.attempts + 1
    verdict = outcome.verdict
    if verdict is Verdict.sent:
        return Done(claimed.id, claimed.mailing_id, MessageStatus.sent, attempts, True, sent_at=now)
    if verdict is Verdict.unauthorized:
        # Not the message's fault: it keeps its attempts and waits for the pause to end.
        return give_back(
            claimed, at=now + timedelta(seconds=auth_retry_seconds), reason=outcome.detail
        )
    status = MessageStatus.failed
    detail = outcome.detail
    next_attempt_at = None
    if verdict is Verdict.retry:
        if policy.gives_up(attempts):
            detail = f"gave up after {attempts} attempts; last: {detail}"
        else:
            retry_at = policy.next_attempt(
                attempts=attempts, now=now, retry_after=outcome.retry_after, rng=rng
            )
            if end_time is None or retry_at >= end_time:
                status = MessageStatus.expired
            else:
                status, next_attempt_at = MessageStatus.pending, retry_at
    return Done(
        claimed.id,
        claimed.mailing_id,
        status,
        attempts,
        True,
        next_attempt_at=next_attempt_at,
        last_error=_error(detail),
        error_kind=outcome.error,
    )
