from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Query, Request, status
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.core.body import JsonBody
from notiflow.core.errors import error_responses
from notiflow.core.pagination import Page, PageDep
from notiflow.core.types import BlankIsNone
from notiflow.deps import ClockDep, SessionDep, SessionmakerDep
from notiflow.mailings import service
from notiflow.mailings.schemas import (
    MailingCreate,
    MailingFilter,
    MailingPatch,
    MailingRead,
    MailingReplace,
    SendWindow,
)
from notiflow.messages import export
from notiflow.messages import service as messages
from notiflow.messages.schemas import MessageRead
from notiflow.models import Mailing, MailingStatus, MessageStatus
from notiflow.stats import service as stats
from notiflow.stats.schemas import MailingStatsRead, MessageCounts

router = APIRouter(prefix="/mailings", tags=["mailings"])

MailingId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The mailing's id.")]


def _notify(request: Request) -> service.Notify:
    notify: service.Notify = request.app.state.engine_signal.notify
    return notify


def _read(mailing: Mailing, counts: MessageCounts) -> MailingRead:
    window = None
    if mailing.window_start is not None and mailing.window_end is not None:
        window = SendWindow(start=mailing.window_start, end=mailing.window_end)
    return MailingRead(
        id=mailing.id,
        text=mailing.text,
        start_time=mailing.start_time,
        end_time=mailing.end_time,
        filter=MailingFilter(operator_codes=mailing.operator_codes, tags=mailing.tags),
        send_window=window,
        status=MailingStatus(mailing.status),
        created_at=mailing.created_at,
        updated_at=mailing.updated_at,
        stats=counts,
    )


async def _read_one(session: AsyncSession, mailing: Mailing) -> MailingRead:
    counts = await stats.counts_for(session, [mailing.id])
    return _read(mailing, counts[mailing.id])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[JsonBody],
    summary="Create a mailing",
    description=(
        "If start_time ≤ now < end_time, sending starts at once; a future start_time starts "
        "by itself at that time."
    ),
    responses=error_responses(401, 413, 415, 422),
)
async def create_mailing(
    data: MailingCreate, request: Request, session: SessionDep, clock: ClockDep
) -> MailingRead:
    mailing = await service.create(session, data=data, clock=clock, notify=_notify(request))
    return await _read_one(session, mailing)


@router.get("", summary="List mailings, newest first", responses=error_responses(401, 422))
async def list_mailings(
    session: SessionDep,
    page: PageDep,
    status: Annotated[
        MailingStatus | None, BlankIsNone, Query(description="Only this status.")
    ] = None,
) -> Page[MailingRead]:
    mailings, total = await service.list_page(
        session, status=status, limit=page.limit, offset=page.offset
    )
    counts = await stats.counts_for(session, [m.id for m in mailings])
    return Page[MailingRead](
        items=[_read(m, counts[m.id]) for m in mailings],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/{mailing_id}", summary="Get a mailing", responses=error_responses(401, 404, 422))
async def get_mailing(mailing_id: MailingId, session: SessionDep) -> MailingRead:
    return await _read_one(session, await service.get(session, mailing_id))


_EDIT_RULES = (
    "A scheduled mailing may change every field; a running one only end_time and send_window "
    "(409 names the first other field that would change); completed and cancelled ones nothing."
)


@router.put(
    "/{mailing_id}",
    dependencies=[JsonBody],
    summary="Replace a mailing",
    description=_EDIT_RULES,
    responses=error_responses(401, 404, 409, 413, 415, 422),
)
async def replace_mailing(
    mailing_id: MailingId,
    data: MailingReplace,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
) -> MailingRead:
    mailing = await service.update(
        session,
        mailing_id,
        changes=service.replace_changes(data),
        clock=clock,
        notify=_notify(request),
    )
    return await _read_one(session, mailing)


@router.patch(
    "/{mailing_id}",
    dependencies=[JsonBody],
    summary="Change some fields of a mailing",
    description=_EDIT_RULES,
    responses=error_responses(401, 404, 409, 413, 415, 422),
)
async def patch_mailing(
    mailing_id: MailingId,
    data: MailingPatch,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
) -> MailingRead:
    mailing = await service.update(
        session,
        mailing_id,
        changes=service.patch_changes(data),
        clock=clock,
        notify=_notify(request),
    )
    return await _read_one(session, mailing)


@router.delete(
    "/{mailing_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a mailing",
    description="Sending stops and its messages are deleted.",
    responses=error_responses(401, 404, 422),
)
async def delete_mailing(mailing_id: MailingId, request: Request, session: SessionDep) -> None:
    await service.delete(session, mailing_id, notify=_notify(request))


@router.post(
    "/{mailing_id}/start",
    summary="Start a scheduled mailing now",
    responses=error_responses(401, 404, 409, 422),
)
async def start_mailing(
    mailing_id: MailingId, request: Request, session: SessionDep, clock: ClockDep
) -> MailingRead:
    mailing = await service.start(session, mailing_id, clock=clock, notify=_notify(request))
    return await _read_one(session, mailing)


@router.post(
    "/{mailing_id}/cancel",
    summary="Cancel a mailing",
    description="No further message is sent; messages not yet final become cancelled.",
    responses=error_responses(401, 404, 409, 422),
)
async def cancel_mailing(
    mailing_id: MailingId, request: Request, session: SessionDep, clock: ClockDep
) -> MailingRead:
    mailing = await service.cancel(session, mailing_id, clock=clock, notify=_notify(request))
    return await _read_one(session, mailing)


@router.get(
    "/{mailing_id}/stats",
    summary="Detailed statistics of a mailing",
    responses=error_responses(401, 404, 422),
)
async def mailing_stats(mailing_id: MailingId, session: SessionDep) -> MailingStatsRead:
    return await stats.for_mailing(session, mailing_id)


_MESSAGES_DESCRIPTION = (
    "Each message with its client's `phone` (null once the client has been deleted).\n\n"
    "**CSV export.** With `?format=csv`, or `Accept: text/csv` (without `format`), the answer "
    "is every message of the mailing (of `status`, if given; `limit` and `offset` do not "
    "apply) as CSV, streamed as it is read from the database, with the header "
    f"`{','.join(export.HEADER)}` and `Content-Disposition: attachment; "
    'filename="mailing-<id>-messages.csv"`. Timestamps are UTC with `Z`; empty cells are null.'
)


@router.get(
    "/{mailing_id}/messages",
    summary="List a mailing's messages, or export them all as CSV",
    description=_MESSAGES_DESCRIPTION,
    response_model=Page[MessageRead],
    responses={
        200: {
            "description": "A page of messages (JSON), or all of them (CSV).",
            "content": {
                export.CSV_MEDIA_TYPE: {"schema": {"type": "string"}, "example": export.EXAMPLE}
            },
        },
        **error_responses(401, 404, 422),
    },
)
async def mailing_messages(
    mailing_id: MailingId,
    session: SessionDep,
    sessionmaker: SessionmakerDep,
    page: PageDep,
    status: Annotated[
        MessageStatus | None, BlankIsNone, Query(description="Only this status.")
    ] = None,
    output: Annotated[
        Literal["json", "csv"] | None,
        BlankIsNone,
        Query(
            alias="format",
            description="`csv`: every message as CSV (see above); `json` (the default): a page. "
            "Wins over the Accept header.",
        ),
    ] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Page[MessageRead] | StreamingResponse:
    await service.get(session, mailing_id)
    if output == "csv" or (output is None and export.prefers_csv(accept)):
        return StreamingResponse(
            export.csv_chunks(sessionmaker, mailing_id=mailing_id, status=status),
            media_type=f"{export.CSV_MEDIA_TYPE}; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{export.filename(mailing_id)}"'
            },
        )
    rows, total = await messages.list_page(
        session, mailing_id=mailing_id, status=status, limit=page.limit, offset=page.offset
    )
    return Page[MessageRead](
        items=[MessageRead.of(message, phone) for message, phone in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )
