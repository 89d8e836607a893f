"""Rules of mailings: validation, edits allowed per status, start and cancel."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.core.clock import Clock
from notiflow.core.errors import Conflict, InvalidInput, NotFound
from notiflow.db.session import on_commit
from notiflow.delivery.notify import notify as engine_notify
from notiflow.delivery.queue import scheduling
from notiflow.mailings import repository
from notiflow.mailings.schemas import MailingCreate, MailingFilter, MailingPatch, SendWindow
from notiflow.messages import repository as messages
from notiflow.models import Mailing, MailingStatus
from notiflow.webhooks import events as webhook_events

Notify = Callable[[], None]

# Fields a running mailing may still change.
RUNNING_EDITABLE = frozenset({"end_time", "send_window"})


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


async def create(
    session: AsyncSession, *, data: MailingCreate, clock: Clock, notify: Notify
) -> Mailing:
    now = clock()
    values = replace_changes(data)
    _check_times(values, now=now, end_changed=True)
    mailing = Mailing(status=MailingStatus.scheduled.value, created_at=now, updated_at=now)
    _assign(mailing, values)
    await repository.add(session, mailing)  # its id first: a start is announced with it
    if mailing.start_time <= now:
        await _start(mailing, now, notify, session)
    else:
        await _wake_engine(session, notify)  # the scheduler must learn the nearest start time
    return mailing


async def update(
    session: AsyncSession,
    mailing_id: int,
    *,
    changes: dict[str, Any],
    clock: Clock,
    notify: Notify,
) -> Mailing:
    """Apply ``changes`` (field → new value, API form) under the rules of the mailing's status."""
    mailing = await get(session, mailing_id, for_update=True)
    now = clock()
    current = _current(mailing)
    changed = {name for name, value in changes.items() if current[name] != value}
    status = MailingStatus(mailing.status)
    if status in (MailingStatus.completed, MailingStatus.cancelled) and changed:
        raise Conflict(f"a {status.value} mailing cannot be changed")
    if status is MailingStatus.running:
        frozen = sorted(changed - RUNNING_EDITABLE)
        if frozen:
            raise Conflict(
                "cannot change while the mailing is running (only end_time and send_window can)",
                field=frozen[0],
            )
    if not changed:
        return mailing
    values = {**current, **changes}
    _check_times(values, now=now, end_changed="end_time" in changed)
    _assign(mailing, values)
    mailing.updated_at = now
    if status is MailingStatus.scheduled and mailing.start_time <= now:
        await _start(mailing, now, notify, session)
    else:
        await _wake_engine(session, notify)
    if status is MailingStatus.running and "send_window" in changed:
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


def patch_changes(data: MailingPatch) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name in data.model_fields_set:
        value = getattr(data, name)
        if value is None and name in ("text", "start_time", "end_time"):
            raise InvalidInput("must not be null", field=name)
        if name == "filter" and value is None:
            value = MailingFilter()
        changes[name] = value
    return changes


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
    session: AsyncSession, mailing_id: int, *, clock: Clock, notify: Notify
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
    await messages.cancel_unsent_of_mailing(
        session, mailing.id, reason="mailing cancelled", now=now
    )
    await _wake_engine(session, notify)
    await webhook_events.emit_mailings(
        session, webhook_events.MAILING_CANCELLED, [mailing.id], now=now
    )
    return mailing


async def delete(session: AsyncSession, mailing_id: int, *, notify: Notify) -> None:
    # Its messages first, in the order every writer of messages keeps (see db.locks).
    await messages.lock_of_mailing(session, mailing_id, unsent=False)
    await get(session, mailing_id, for_update=True)
    await repository.remove(session, mailing_id)
    await _wake_engine(session, notify)


async def list_page(
    session: AsyncSession, *, status: MailingStatus | None, limit: int, offset: int
) -> tuple[Sequence[Mailing], int]:
    return await repository.list_page(session, status=status, limit=limit, offset=offset)
