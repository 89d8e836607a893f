"""Rules of mailings: validation, edits allowed per status, start and cancel."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, time
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.clients import repository as clients
from notiflow.clients.schemas import ClientRead
from notiflow.core.clock import Clock
from notiflow.core.errors import Conflict, InvalidInput, NotFound
from notiflow.db.session import on_commit
from notiflow.delivery.notify import Halt, halt_after_commit
from notiflow.delivery.notify import notify as engine_notify
from notiflow.delivery.queue import scheduling
from notiflow.delivery.window import is_open, opens_between, opens_in_zone
from notiflow.mailings import repository
from notiflow.mailings.schemas import (
    AudiencePreview,
    MailingCreate,
    MailingFilter,
    MailingFilterPatch,
    MailingPatch,
    SendWindow,
    SendWindowPatch,
)
from notiflow.messages import repository as messages
from notiflow.models import Mailing, MailingStatus, MessageStatus
from notiflow.webhooks import events as webhook_events

Notify = Callable[[], None]

log = logging.getLogger("notiflow.mailings")

# Fields a running (or paused) mailing may still change.
RUNNING_EDITABLE = frozenset({"end_time", "send_window"})
UNDER_WAY = frozenset({MailingStatus.running, MailingStatus.paused})


async def get(session: AsyncSession, mailing_id: int, *, for_update: bool = False) -> Mailing:
    mailing = await repository.get(session, mailing_id, for_update=for_update)
    if mailing is None:
        raise NotFound(f"mailing {mailing_id} not found")
    return mailing


def _current(mailing: Mailing) -> dict[str, Any]:
    """The editable fields of a mailing in the form the API takes them."""
    window = None
    if mailing.window_start is not None and mailing.window_end is not None:
        window = SendWindow(start=mailing.window_start, end=mailing.window_end)
    return {
        "text": mailing.text,
        "start_time": mailing.start_time,
        "end_time": mailing.end_time,
        "filter": MailingFilter(operator_codes=mailing.operator_codes, tags=mailing.tags),
        "send_window": window,
    }


def _window_bounds(window: SendWindow | None) -> tuple[time | None, time | None]:
    return (None, None) if window is None else (window.start, window.end)


def _assign(mailing: Mailing, values: dict[str, Any]) -> None:
    mailing.text = values["text"]
    mailing.start_time = values["start_time"]
    mailing.end_time = values["end_time"]
    flt: MailingFilter = values["filter"] or MailingFilter()
    mailing.operator_codes = list(flt.operator_codes)
    mailing.tags = list(flt.tags)
    mailing.window_start, mailing.window_end = _window_bounds(values["send_window"])


def _check_times(values: dict[str, Any], *, now: datetime, end_changed: bool) -> None:
    if values["end_time"] <= values["start_time"]:
        raise InvalidInput("must be after start_time", field="end_time")
    if end_changed and values["end_time"] <= now:
        raise InvalidInput("must be in the future", field="end_time")


def _clock_face(at: time) -> str:
    return at.strftime("%H:%M" if at.second == 0 else "%H:%M:%S")


async def _check_window_opens(
    session: AsyncSession, values: dict[str, Any], *, now: datetime
) -> None:
    """Refuse a send window that opens for no client of the audience before end_time.

    The time zones are those of the clients the filter selects now (read from an index); with
    no such client yet, every UTC offset a client may have counts. The window must be open
    somewhere at some instant between the moment sending can begin (start_time, or now once
    that has passed) and end_time; otherwise every message would expire unsent.
    """
    window: SendWindow | None = values["send_window"]
    begin = max(values["start_time"], now)
    if window is None or values["end_time"] <= begin:
        return  # no window; or nothing left to send, which the time checks speak of
    since = "start_time" if begin == values["start_time"] else "now"
    face = f"{_clock_face(window.start)}–{_clock_face(window.end)}"
    flt: MailingFilter = values["filter"] or MailingFilter()
    condition = clients.audience_condition(flt.operator_codes, flt.tags)
    zones = sorted(await clients.audience_by_timezone(session, condition, opted_out=False))
    if zones:
        for zone in zones:
            try:
                if opens_in_zone(
                    begin,
                    values["end_time"],
                    window_start=window.start,
                    window_end=window.end,
                    timezone=zone,
                ):
                    return
            except ValueError:  # a zone this system no longer knows: it cannot decide
                return
        shown = ", ".join(zones[:5]) + (f" and {len(zones) - 5} more" if len(zones) > 5 else "")
        raise InvalidInput(
            f"{face} never opens between {since} and end_time for any client of the audience "
            f"(their time zones: {shown}), so every message would expire unsent; widen the "
            "window or move end_time",
            field="send_window",
        )
    if opens_between(begin, values["end_time"], window_start=window.start, window_end=window.end):
        return
    raise InvalidInput(
        f"{face} never opens between {since} and end_time in any client's time zone (at any "
        "UTC offset from -14:00 to +14:00), so every message would expire unsent; widen the "
        "window or move end_time",
        field="send_window",
    )


def _log_on_commit(
    session: AsyncSession, event: str, *, level: int = logging.INFO, **fields: Any
) -> None:
    """Log ``event`` once the transaction has committed (a change rolled back is not told)."""
    on_commit(session, lambda: log.log(level, event, extra=fields))


async def _wake_engine(session: AsyncSession, notify: Notify) -> None:
    """Wake the engine once this transaction commits: this process's, and others' by NOTIFY."""
    on_commit(session, notify)
    await engine_notify(session)


async def _start(mailing: Mailing, now: datetime, notify: Notify, session: AsyncSession) -> None:
    mailing.status = MailingStatus.running.value
    mailing.started_at = now
    mailing.updated_at = now
    await _wake_engine(session, notify)
    await webhook_events.emit_mailings(
        session, webhook_events.MAILING_STARTED, [mailing.id], now=now
    )
    _log_on_commit(session, "mailing started", mailing_id=mailing.id)


async def create(
    session: AsyncSession, *, data: MailingCreate, clock: Clock, notify: Notify
) -> Mailing:
    now = clock()
    values = replace_changes(data)
    _check_times(values, now=now, end_changed=True)
    await _check_window_opens(session, values, now=now)
    mailing = Mailing(status=MailingStatus.scheduled.value, created_at=now, updated_at=now)
    _assign(mailing, values)
    await repository.add(session, mailing)  # its id first: a start is announced with it
    if mailing.start_time <= now:
        await _start(mailing, now, notify, session)
    else:
        await _wake_engine(session, notify)  # the scheduler must learn the nearest start time
    return mailing


async def replace(
    session: AsyncSession, mailing_id: int, *, data: MailingCreate, clock: Clock, notify: Notify
) -> Mailing:
    """PUT: the whole mailing, under the rules of its status."""
    changes = replace_changes(data)
    return await _update(
        session, mailing_id, edit=lambda _current: changes, clock=clock, notify=notify
    )


async def patch(
    session: AsyncSession, mailing_id: int, *, data: MailingPatch, clock: Clock, notify: Notify
) -> Mailing:
    """PATCH: a JSON merge patch of the mailing, under the rules of its status."""
    return await _update(
        session,
        mailing_id,
        edit=lambda current: patch_changes(data, current),
        clock=clock,
        notify=notify,
    )


async def _update(
    session: AsyncSession,
    mailing_id: int,
    *,
    edit: Callable[[dict[str, Any]], dict[str, Any]],
    clock: Clock,
    notify: Notify,
) -> Mailing:
    """Apply the changes ``edit`` makes of the current values (field → new value, API form)
    under the rules of the mailing's status."""
    mailing = await get(session, mailing_id, for_update=True)
    now = clock()
    current = _current(mailing)
    changes = edit(current)
    changed = {name for name, value in changes.items() if current[name] != value}
    status = MailingStatus(mailing.status)
    if status in (MailingStatus.completed, MailingStatus.cancelled) and changed:
        raise Conflict(f"a {status.value} mailing cannot be changed")
    if status in UNDER_WAY:
        frozen = sorted(changed - RUNNING_EDITABLE)
        if frozen:
            raise Conflict(
                f"cannot change while the mailing is {status.value} "
                "(only end_time and send_window can)",
                field=frozen[0],
            )
    if not changed:
        return mailing
    values = {**current, **changes}
    _check_times(values, now=now, end_changed="end_time" in changed)
    if changed & {"start_time", "end_time", "send_window", "filter"}:
        await _check_window_opens(session, values, now=now)
    _assign(mailing, values)
    mailing.updated_at = now
    if status is MailingStatus.scheduled and mailing.start_time <= now:
        await _start(mailing, now, notify, session)
    else:
        await _wake_engine(session, notify)
    if status in UNDER_WAY and "send_window" in changed:
        # Messages waiting for the old window are looked at again under the new one.
        await scheduling.reschedule_pending(session, mailing.id, now)
    await session.flush()
    return mailing


def replace_changes(data: MailingCreate) -> dict[str, Any]:
    return {
        "text": data.text,
        "start_time": data.start_time,
        "end_time": data.end_time,
        "filter": data.filter or MailingFilter(),
        "send_window": data.send_window,
    }


def patch_changes(data: MailingPatch, current: dict[str, Any]) -> dict[str, Any]:
    """The new values a merge patch (RFC 7396) makes of ``current``: only the fields sent, with
    ``filter`` and ``send_window`` merged key by key."""
    changes: dict[str, Any] = {}
    for name in data.model_fields_set:
        value = getattr(data, name)
        if name == "filter":
            changes[name] = merge_filter(current["filter"], value)
        elif name == "send_window":
            changes[name] = merge_window(current["send_window"], value)
        elif value is None:
            raise InvalidInput("must not be null", field=name)
        else:
            changes[name] = value
    return changes


def merge_filter(current: MailingFilter, patch: MailingFilterPatch | None) -> MailingFilter:
    """``null`` resets the filter; each key sent replaces its list, ``null`` empties it."""
    if patch is None:
        return MailingFilter()
    merged = {"operator_codes": current.operator_codes, "tags": current.tags}
    for key in patch.model_fields_set:
        merged[key] = getattr(patch, key) or []
    return MailingFilter(**merged)


def merge_window(current: SendWindow | None, patch: SendWindowPatch | None) -> SendWindow | None:
    """``null`` removes the window; the ends sent replace the current ones, and the result is
    checked as a whole. ``{}`` changes nothing."""
    if patch is None:
        return None
    if not patch.model_fields_set:
        return current
    merged: dict[str, time] = {}
    if current is not None:
        merged = {"start": current.start, "end": current.end}
    for key in sorted(patch.model_fields_set):
        value = getattr(patch, key)
        if value is None:
            raise InvalidInput(
                "must not be null: a window has a start and an end (send_window: null removes "
                "the window)",
                field=f"send_window.{key}",
            )
        merged[key] = value
    for key in ("start", "end"):
        if key not in merged:
            raise InvalidInput(
                "required: the mailing has no send window for the other end to merge with",
                field=f"send_window.{key}",
            )
    try:
        return SendWindow(**merged)
    except ValidationError as exc:
        reason = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise InvalidInput(reason, field="send_window") from None


async def start(session: AsyncSession, mailing_id: int, *, clock: Clock, notify: Notify) -> Mailing:
    mailing = await get(session, mailing_id, for_update=True)
    if mailing.status != MailingStatus.scheduled.value:
        raise Conflict(f"only a scheduled mailing can be started; this one is {mailing.status}")
    now = clock()
    if mailing.end_time <= now:
        raise Conflict("its end_time has passed; move end_time first", field="end_time")
    mailing.start_time = now
    mailing.updated_at = now
    await _start(mailing, now, notify, session)
    await session.flush()
    return mailing


async def cancel(
    session: AsyncSession,
    mailing_id: int,
    *,
    clock: Clock,
    notify: Notify,
    halt: Halt | None = None,
) -> Mailing:
    mailing = await get(session, mailing_id, for_update=True)
    if mailing.status == MailingStatus.cancelled.value:
        return mailing
    if mailing.status == MailingStatus.completed.value:
        raise Conflict("a completed mailing cannot be cancelled")
    now = clock()
    mailing.status = MailingStatus.cancelled.value
    mailing.finished_at = now
    mailing.updated_at = now
    await session.flush()
    cancelled = await messages.cancel_unsent_of_mailing(
        session, mailing.id, reason="mailing cancelled", now=now
    )
    _log_on_commit(session, "mailing cancelled", mailing_id=mailing.id, cancelled=cancelled)
    await halt_after_commit(session, halt, "mailing", mailing.id)
    on_commit(session, notify)
    await webhook_events.emit_mailings(
        session, webhook_events.MAILING_CANCELLED, [mailing.id], now=now
    )
    return mailing


async def delete(
    session: AsyncSession, mailing_id: int, *, notify: Notify, halt: Halt | None = None
) -> None:
    # Its messages first, in the order every writer of messages keeps (see db.locks).
    await messages.lock_of_mailing(session, mailing_id, unsent=False)
    await get(session, mailing_id, for_update=True)
    await repository.remove(session, mailing_id)
    await halt_after_commit(session, halt, "mailing", mailing_id)
    _log_on_commit(session, "mailing deleted", mailing_id=mailing_id)
    on_commit(session, notify)


# --- pause, resume, retry ---------------------------------------------------------------------

PAUSED_BY_API = "paused through the API"


async def _pause(
    session: AsyncSession,
    mailing: Mailing,
    *,
    reason: str,
    now: datetime,
    halt: Halt | None,
    level: int = logging.INFO,
) -> None:
    _log_on_commit(session, "mailing paused", level=level, mailing_id=mailing.id, reason=reason)
    mailing.status = MailingStatus.paused.value
    mailing.paused_reason = reason[:500]
    mailing.updated_at = now
    await session.flush()
    await halt_after_commit(session, halt, "mailing", mailing.id)
    await webhook_events.emit_mailings(
        session, webhook_events.MAILING_PAUSED, [mailing.id], now=now
    )


async def pause(
    session: AsyncSession,
    mailing_id: int,
    *,
    clock: Clock,
    halt: Halt | None,
    reason: str | None = None,
) -> Mailing:
    """Stop sending a running mailing: no request starts once this commits; requests already
    on their way finish, and messages claimed but not sent go back to the queue."""
    mailing = await get(session, mailing_id, for_update=True)
    if mailing.status == MailingStatus.paused.value:
        return mailing
    if mailing.status != MailingStatus.running.value:
        raise Conflict(f"only a running mailing can be paused; this one is {mailing.status}")
    await _pause(session, mailing, reason=reason or PAUSED_BY_API, now=clock(), halt=halt)
    return mailing


async def pause_by_engine(
    session: AsyncSession, mailing_id: int, *, reason: str, now: datetime
) -> bool:
    """The engine's auto-pause; False when the mailing no longer runs (nothing to do)."""
    mailing = await repository.get(session, mailing_id, for_update=True)
    if mailing is None or mailing.status != MailingStatus.running.value:
        return False
    # Other workers learn of it by NOTIFY; this one's sender halted the mailing already.
    await _pause(session, mailing, reason=reason, now=now, halt=None, level=logging.WARNING)
    return True


async def resume(
    session: AsyncSession, mailing_id: int, *, clock: Clock, notify: Notify
) -> Mailing:
    """Send a paused mailing again, from where it stopped: only what was not sent goes."""
    mailing = await get(session, mailing_id, for_update=True)
    if mailing.status == MailingStatus.running.value:
        return mailing
    if mailing.status != MailingStatus.paused.value:
        raise Conflict(f"only a paused mailing can be resumed; this one is {mailing.status}")
    now = clock()
    if mailing.end_time <= now:
        raise Conflict(
            "its end_time has passed: it completes with what was sent (move end_time first "
            "to send the rest)",
            field="end_time",
        )
    mailing.status = MailingStatus.running.value
    mailing.paused_reason = None
    mailing.updated_at = now
    await session.flush()
    await _wake_engine(session, notify)
    _log_on_commit(session, "mailing resumed", mailing_id=mailing.id)
    return mailing


async def retry_failed(
    session: AsyncSession,
    mailing_id: int,
    *,
    include_expired: bool,
    end_time: datetime | None = None,
    clock: Clock,
    notify: Notify,
) -> tuple[Mailing, int]:
    """Put a mailing's failed (and, if asked, expired) messages back in its queue, each with a
    fresh set of attempts; a completed mailing runs again. Return it and how many went back."""
    mailing = await get(session, mailing_id, for_update=True)
    status = MailingStatus(mailing.status)
    if status in (MailingStatus.scheduled, MailingStatus.cancelled):
        raise Conflict(f"a {status.value} mailing has nothing to retry")
    now = clock()
    if end_time is not None and end_time != mailing.end_time:
        _check_times(
            {"start_time": mailing.start_time, "end_time": end_time}, now=now, end_changed=True
        )
        mailing.end_time = end_time
    if mailing.end_time <= now:
        raise Conflict(
            "its end_time has passed: send a new end_time with the retry", field="end_time"
        )
    statuses = [MessageStatus.failed]
    if include_expired:
        statuses.append(MessageStatus.expired)
    requeued = await messages.requeue(session, mailing.id, statuses=statuses, now=now)
    if requeued and status is MailingStatus.completed:
        mailing.status = MailingStatus.running.value
        mailing.finished_at = None
    if requeued or end_time is not None:
        mailing.updated_at = now
        await session.flush()
        await _wake_engine(session, notify)
    _log_on_commit(
        session,
        "mailing retry-failed",
        mailing_id=mailing.id,
        requeued=requeued,
        include_expired=include_expired,
        end_time=mailing.end_time,
    )
    return mailing, requeued


async def list_page(
    session: AsyncSession, *, status: MailingStatus | None, limit: int, offset: int
) -> tuple[Sequence[Mailing], int]:
    return await repository.list_page(session, status=status, limit=limit, offset=offset)


# --- audience preview -------------------------------------------------------------------------

SAMPLE_SIZE = 10


async def preview(
    session: AsyncSession, *, flt: MailingFilter, window: SendWindow | None, now: datetime
) -> AudiencePreview:
    """Who a mailing with this filter (and window) would reach now, without writing anything."""
    condition = clients.audience_condition(flt.operator_codes, flt.tags)
    everyone = await clients.audience_by_timezone(session, condition, opted_out=False)
    opted_out = await clients.audience_by_timezone(session, condition, opted_out=True)
    in_window = None
    if window is not None:
        in_window = 0
        for zone, count in everyone.items():
            try:
                open_now = is_open(now, start=window.start, end=window.end, timezone=zone)
            except ValueError:  # a zone this system no longer knows: its clients would fail
                continue
            if open_now:
                in_window += count - opted_out.get(zone, 0)
    matching, left_out = sum(everyone.values()), sum(opted_out.values())
    sample = await clients.audience_sample(session, condition, limit=SAMPLE_SIZE)
    return AudiencePreview(
        matching=matching,
        opted_out=left_out,
        audience=matching - left_out,
        in_window_now=in_window,
        sample=[ClientRead.model_validate(client) for client in sample],
    )


async def audience_of(session: AsyncSession, mailing_id: int, *, now: datetime) -> AudiencePreview:
    mailing = await get(session, mailing_id)
    current = _current(mailing)
    return await preview(session, flt=current["filter"], window=current["send_window"], now=now)
