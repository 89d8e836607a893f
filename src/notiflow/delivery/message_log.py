"""The lines the sender logs about one message: its attempt (DEBUG, with the phone, the status
code and the latency) and, when it was not sent, what becomes of it (WARNING: retried at a time,
failed or expired, and why). The sender calls ``attempt`` only while DEBUG is enabled (a cached
check), and ``decision`` only for an attempt that did not send, so a message sent at INFO costs
nothing here.
"""

from __future__ import annotations

import logging
from typing import Any

from notiflow.delivery.policy import Outcome, Verdict
from notiflow.delivery.records import Claimed, Done
from notiflow.logging import redact_phones
from notiflow.models import MessageStatus

log = logging.getLogger("notiflow.engine")


def ids(claimed: Claimed) -> dict[str, Any]:
    return {
        "message_id": claimed.id,
        "mailing_id": claimed.mailing_id,
        "client_id": claimed.client_id,
    }


def attempt(claimed: Claimed, outcome: Outcome, seconds: float) -> None:
    """The DEBUG line of one request to the provider (the phone is shown at DEBUG only)."""
    log.debug(
        "send attempt",
        extra={
            **ids(claimed),
            "phone": claimed.phone,
            "attempt": claimed.attempts + 1,
            "status_code": outcome.status_code,
            "latency_ms": round(seconds * 1000, 1),
            "verdict": outcome.verdict.value,
            "error": outcome.error,
        },
    )


def decision(claimed: Claimed, outcome: Outcome, done: Done) -> None:
    """The WARNING of what becomes of a message after an attempt that did not send it: retried
    at a time, failed, or expired. A refused token pauses sending as a whole (the gate says so)."""
    if outcome.verdict is Verdict.unauthorized:
        return
    fields = {
        **ids(claimed),
        "attempt": done.attempts,
        "error": outcome.error,
        "reason": redact_phones(outcome.detail),
    }
    if done.status is MessageStatus.pending:
        log.warning("message will be retried", extra={**fields, "retry_at": done.next_attempt_at})
    elif done.status is MessageStatus.expired:
        log.warning("message expired: its next attempt would come after end_time", extra=fields)
    elif outcome.verdict is Verdict.fail:
        log.warning("message failed: the provider refused it for good", extra=fields)
    else:
        log.warning("message failed: no attempts left", extra=fields)
