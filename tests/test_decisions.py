"""The sender's decisions and its gate, as tables of cases: no database, no network, no sleep."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta

import pytest

from notiflow.delivery import decisions
from notiflow.delivery.breaker import CircuitBreaker
from notiflow.delivery.gate import ProviderGate, Ticket
from notiflow.delivery.policy import SENT, Outcome, RetryPolicy, Verdict
from notiflow.delivery.records import ActiveMailing, Claimed
from notiflow.models import MessageStatus

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
END = NOW + timedelta(hours=6)
POLICY = RetryPolicy(base_seconds=10, max_seconds=60, max_attempts=3)


def _claimed(**changes: object) -> Claimed:
    values: dict[str, object] = {
        "id": 7,
        "mailing_id": 3,
        "client_id": 11,
        "attempts": 0,
        "phone": "79001234567",
        "timezone": "UTC",
    }
    values.update(changes)
    return Claimed(**values)  # type: ignore[arg-type]


def _mailing(window: tuple[str, str] | None = None, end: datetime = END) -> ActiveMailing:
    start, stop = (time.fromisoformat(t) for t in window) if window else (None, None)
    return ActiveMailing(3, "hi", end, start, stop)


@pytest.mark.parametrize(
    ("claimed", "mailing", "status", "next_attempt_at", "error"),
    [
        (_claimed(), _mailing(), None, None, None),
        (_claimed(phone=None), _mailing(), MessageStatus.cancelled, None, "client deleted"),
        (_claimed(), _mailing(end=NOW), MessageStatus.expired, None, "end_time passed"),
        (_claimed(), _mailing(("11:00", "13:00")), None, None, None),
        # Outside the window: back to the queue until it opens; not an attempt.
        (
            _claimed(),
            _mailing(("14:00", "15:00")),
            MessageStatus.pending,
            NOW.replace(hour=14),
            None,
        ),
        (_claimed(timezone="+03:00"), _mailing(("14:00", "16:00")), None, None, None),
        # The window opens only after the end: nothing to wait for.
        (_claimed(), _mailing(("20:00", "21:00")), MessageStatus.expired, None, "send window"),
    ],
)
def test_before_send(
    claimed: Claimed,
    mailing: ActiveMailing,
    status: MessageStatus | None,
    next_attempt_at: datetime | None,
    error: str | None,
) -> None:
    done = decisions.before_send(claimed, mailing, NOW)
    if status is None:
        assert done is None
        return
    assert done is not None
    assert (done.status, done.attempted, done.attempts) == (status, False, 0)
    assert done.next_attempt_at == next_attempt_at
    assert (done.last_error is None) == (error is None)
    if error is not None:
        assert error in (done.last_error or "")


def test_before_send_with_a_time_zone_the_system_does_not_know_raises() -> None:
    # The sender turns this into an internal error of that one message (see test_sender).
    with pytest.raises(ValueError, match="time zone"):
        decisions.before_send(_claimed(timezone="Mars/Base"), _mailing(("11:00", "13:00")), NOW)


RETRY = Outcome(Verdict.retry, "HTTP 503", "HTTP 503: unwell")
LATE_RETRY = Outcome(Verdict.retry, "HTTP 429", "HTTP 429", retry_after=3600)


@pytest.mark.parametrize(
    ("outcome", "attempts", "end", "status", "counted", "retry"),
    [
        (SENT, 0, END, MessageStatus.sent, 1, False),
        (Outcome(Verdict.fail, "HTTP 400", "HTTP 400: no"), 0, END, MessageStatus.failed, 1, False),
        (RETRY, 0, END, MessageStatus.pending, 1, True),
        (RETRY, 2, END, MessageStatus.failed, 3, False),  # the third attempt was the last
        (LATE_RETRY, 0, NOW + timedelta(seconds=30), MessageStatus.expired, 1, False),
        (RETRY, 0, None, MessageStatus.expired, 1, False),  # the mailing is gone
        # A refused token is not the message's fault: no attempt is counted.
        (
            Outcome(Verdict.unauthorized, "HTTP 401", "HTTP 401"),
            1,
            END,
            MessageStatus.pending,
            1,
            True,
        ),
    ],
)
def test_after_send(
    outcome: Outcome,
    attempts: int,
    end: datetime | None,
    status: MessageStatus,
    counted: int,
    retry: bool,
) -> None:
    done = decisions.after_send(
        _claimed(attempts=attempts),
        outcome,
        now=NOW,
        end_time=end,
        policy=POLICY,
        rng=random.Random(1),
        auth_retry_seconds=30,
    )
    assert done.status is status
    assert done.attempts == counted
    assert done.attempted is (outcome.verdict is not Verdict.unauthorized)
    assert (done.next_attempt_at is not None) is retry
    if retry:
        assert done.next_attempt_at is not None
        assert NOW < done.next_attempt_at < END
    assert (done.sent_at == NOW) is (status is MessageStatus.sent)
    if status is MessageStatus.failed and attempts == 2:
        assert (done.last_error or "").startswith("gave up after 3 attempts")
    if outcome.verdict is not Verdict.sent:
        assert done.last_error


def test_errors_fit_their_column() -> None:
    done = decisions.internal_error(_claimed(), RuntimeError("x" * 2000), retry_at=END)
    assert done.last_error is not None
    assert len(done.last_error) == decisions.LAST_ERROR_MAX
    assert (done.status, done.attempted, done.next_attempt_at) == (
        MessageStatus.pending,
        False,
        END,
    )


# --- the gate ------------------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


FAIL = Outcome(Verdict.retry, "timeout", "no answer before the timeout")
REFUSED = Outcome(Verdict.unauthorized, "HTTP 401", "HTTP 401: bad token")


def _gate(clock: FakeTime) -> ProviderGate:
    breaker = CircuitBreaker(
        window=4, min_requests=4, failure_ratio=0.5, cooldown=1, monotonic=clock
    )
    return ProviderGate(breaker=breaker, auth_retry_seconds=30, monotonic=clock)


def _open(gate: ProviderGate, clock: FakeTime) -> None:
    for _ in range(4):
        ticket = gate.admit()
        assert ticket is Ticket.normal
        gate.settle(ticket, FAIL)
    assert gate.state == "circuit_open"
    assert gate.admit() is None
    clock.now += 1.5  # the cool-down is over


@pytest.mark.parametrize("answer", [None, SENT, FAIL])
def test_the_probe_always_comes_back(answer: Outcome | None) -> None:
    """Whatever becomes of the probe — no answer at all (its message was cancelled, deleted or
    expired on the way, or the send crashed), a good one or a bad one — another request may go
    afterwards, at once or after the next cool-down."""
    clock = FakeTime()
    gate = _gate(clock)
    _open(gate, clock)
    probe = gate.admit()
    assert probe is Ticket.probe
    assert gate.state == "circuit_half_open"
    assert gate.admit() is None  # one probe at a time
    gate.settle(probe, answer)
    assert not gate.probe_out
    if answer is FAIL:
        assert gate.state == "circuit_open"
        clock.now += 2.5  # twice the cool-down
    expected = Ticket.normal if answer is SENT else Ticket.probe
    assert gate.admit() is expected


def test_answers_of_requests_sent_before_the_breaker_opened_decide_nothing() -> None:
    clock = FakeTime()
    gate = _gate(clock)
    late = [gate.admit() for _ in range(3)]
    _open(gate, clock)
    probe = gate.admit()
    assert probe is Ticket.probe
    for ticket in late:
        assert ticket is not None
        gate.settle(ticket, SENT)  # late good answers do not close it…
    assert gate.state == "circuit_half_open"
    assert gate.admit() is None  # …nor let more requests out while the probe is away
    gate.settle(probe, SENT)
    assert gate.state == "ok"


@pytest.mark.parametrize("answer", [None, SENT, REFUSED])
def test_a_refused_token_pauses_until_a_probe_gets_through(answer: Outcome | None) -> None:
    clock = FakeTime()
    gate = _gate(clock)
    ticket = gate.admit()
    assert ticket is Ticket.normal
    gate.settle(ticket, REFUSED)
    assert gate.state == "unauthorized"
    assert gate.auth_error == "HTTP 401: bad token"
    assert gate.admit() is None
    assert gate.seconds_until_admit() == 30
    clock.now += 30
    probe = gate.admit()
    assert probe is Ticket.probe
    assert gate.admit() is None
    gate.settle(probe, answer)
    if answer is SENT:
        assert gate.state == "ok"
        assert gate.admit() is Ticket.normal
    elif answer is None:  # the probe never got its answer: the next one may go at once
        assert gate.state == "unauthorized"
        assert gate.admit() is Ticket.probe
    else:
        assert gate.state == "unauthorized"
        assert gate.admit() is None
        clock.now += 30
        assert gate.admit() is Ticket.probe


def test_the_ready_queue_serves_each_mailing_in_turn() -> None:
    from notiflow.delivery.ready import ReadyQueue

    ready = ReadyQueue()
    for n in range(5):
        ready.append(_claimed(id=n, mailing_id=1))
    ready.append(_claimed(id=10, mailing_id=2))
    ready.append(_claimed(id=11, mailing_id=2))
    assert len(ready) == 7
    order = [ready.popleft().id for _ in range(7)]
    assert order == [0, 10, 1, 11, 2, 3, 4]
    assert not ready


# --- the auto-pause rule ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcomes", "paused_after"),
    [
        ("ffff", 4),  # a full window of failures
        ("fff", None),  # the window is not full yet
        ("ffok", 4),  # 2 of 4 reach the 50 % ratio
        ("fooofooo", None),  # a quarter fails, never half
        ("ooooffoo", 6),  # judged on the last four only: o o f f
    ],
)
def test_failure_watch(outcomes: str, paused_after: int | None) -> None:
    from notiflow.delivery.watch import FailureWatch

    watch = FailureWatch(ratio=0.5, window=4)
    reasons = [watch.record(7, failed=o == "f") for o in outcomes.replace("k", "o")]
    judged = [i + 1 for i, reason in enumerate(reasons) if reason is not None]
    assert judged[:1] == ([] if paused_after is None else [paused_after])
    if paused_after is not None:
        assert "of its last 4 attempts" in str(reasons[paused_after - 1])


def test_failure_watch_keeps_mailings_apart_and_forgets_finished_ones() -> None:
    from notiflow.delivery.watch import FailureWatch

    watch = FailureWatch(ratio=1.0, window=2)
    assert watch.record(1, failed=True) is None
    assert watch.record(2, failed=True) is None
    watch.retain({2})
    assert watch.record(1, failed=True) is None  # mailing 1 starts afresh
    assert watch.record(2, failed=True) is not None


def test_a_message_of_a_client_who_had_opted_out_when_claimed_is_cancelled() -> None:
    from dataclasses import replace as copy

    from notiflow.delivery.decisions import CLIENT_OPTED_OUT, before_send
    from notiflow.delivery.records import ActiveMailing, Claimed

    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    mailing = ActiveMailing(1, "hi", now + timedelta(hours=1), None, None)
    claimed = Claimed(7, 1, 3, 0, "79001234567", "UTC", opted_out=True)
    done = before_send(claimed, mailing, now)
    assert done is not None
    assert (done.status, done.last_error, done.attempted) == ("cancelled", CLIENT_OPTED_OUT, False)
    assert before_send(copy(claimed, opted_out=False), mailing, now) is None
