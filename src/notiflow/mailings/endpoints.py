from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Header, Path, Query, Request, status
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.auth.roles import require_role
from notiflow.config import Settings
from notiflow.core.body import JsonBody
from notiflow.core.errors import ServiceUnavailable, error_responses
from notiflow.core.pagination import Page, PageDep
from notiflow.core.types import BlankIsNone
from notiflow.db.session import commit
from notiflow.delivery.provider import ProviderClient
from notiflow.deps import (
    ClockDep,
    HaltDep,
    SessionDep,
    SessionmakerDep,
    SettingsDep,
    WorkerWatchDep,
)
from notiflow.mailings import service, test_sends
from notiflow.mailings.schemas import (
    AudiencePreview,
    MailingCreate,
    MailingFilter,
    MailingPatch,
    MailingRead,
    MailingReplace,
    RetryFailed,
    RetryFailedRead,
    SendWindow,
    TestSendCreate,
    TestSendRead,
)
from notiflow.messages import export
from notiflow.messages import service as messages
from notiflow.messages.schemas import MessageRead
from notiflow.models import Mailing, MailingStatus, MessageStatus
from notiflow.stats import service as stats
from notiflow.stats.schemas import MailingStatsRead, MessageCounts
from notiflow.workers.watch import WorkerWatch

router = APIRouter(prefix="/mailings", tags=["mailings"])

MailingId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The mailing's id.")]


def _notify(request: Request) -> service.Notify:
    notify: service.Notify = request.app.state.engine_signal.notify
    return notify


def _read(
    mailing: Mailing, counts: MessageCounts, warnings: list[str] | None = None
) -> MailingRead:
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
        paused_reason=mailing.paused_reason,
        created_at=mailing.created_at,
        updated_at=mailing.updated_at,
        stats=counts,
        warnings=warnings or [],
    )


async def _read_one(session: AsyncSession, mailing: Mailing, watch: WorkerWatch) -> MailingRead:
    counts = await stats.counts_for(session, [mailing.id])
    warnings = await watch.warnings(session, [mailing])
    return _read(mailing, counts[mailing.id], warnings.get(mailing.id))


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
    data: MailingCreate,
    request: Request,
    session: SessionDep,
    watch: WorkerWatchDep,
    clock: ClockDep,
) -> MailingRead:
    mailing = await service.create(session, data=data, clock=clock, notify=_notify(request))
    return await _read_one(session, mailing, watch)


@router.post(
    "/preview",
    dependencies=[JsonBody, require_role("read")],  # writes nothing: a read
    summary="Preview the audience of a mailing before creating it",
    description=(
        "Takes the same body as creating a mailing and writes nothing: how many clients the "
        "filter selects, how many of them opted out, a sample of the audience, and with a send "
        "window how many are inside it now. Counted from indexes, so it is fast on millions of "
        "clients."
    ),
    responses=error_responses(401, 413, 415, 422),
)
async def preview_audience(
    data: MailingCreate, session: SessionDep, clock: ClockDep
) -> AudiencePreview:
    return await service.preview(
        session, flt=data.filter or MailingFilter(), window=data.send_window, now=clock()
    )


@router.get("", summary="List mailings, newest first", responses=error_responses(401, 422))
async def list_mailings(
    session: SessionDep,
    watch: WorkerWatchDep,
    page: PageDep,
    status: Annotated[
        MailingStatus | None, BlankIsNone, Query(description="Only this status.")
    ] = None,
) -> Page[MailingRead]:
    mailings, total = await service.list_page(
        session, status=status, limit=page.limit, offset=page.offset
    )
    counts = await stats.counts_for(session, [m.id for m in mailings])
    warnings = await watch.warnings(session, mailings)
    return Page[MailingRead](
        items=[_read(m, counts[m.id], warnings.get(m.id)) for m in mailings],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/{mailing_id}", summary="Get a mailing", responses=error_responses(401, 404, 422))
async def get_mailing(
    mailing_id: MailingId, session: SessionDep, watch: WorkerWatchDep
) -> MailingRead:
    return await _read_one(session, await service.get(session, mailing_id), watch)


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
    watch: WorkerWatchDep,
    clock: ClockDep,
) -> MailingRead:
    mailing = await service.replace(
        session, mailing_id, data=data, clock=clock, notify=_notify(request)
    )
    return await _read_one(session, mailing, watch)


@router.patch(
    "/{mailing_id}",
    dependencies=[JsonBody],
    summary="Change some fields of a mailing",
    description=(
        "A JSON merge patch (RFC 7396): the fields sent change, the others keep their values. "
        'Inside `filter`, a key sent replaces that list and `null` empties it (`"filter": '
        "null` resets the whole filter); inside `send_window`, the ends sent replace the "
        'current ones and the result is checked as a whole (`"send_window": null` removes '
        "it). " + _EDIT_RULES
    ),
    responses=error_responses(401, 404, 409, 413, 415, 422),
)
async def patch_mailing(
    mailing_id: MailingId,
    data: MailingPatch,
    request: Request,
    session: SessionDep,
    watch: WorkerWatchDep,
    clock: ClockDep,
) -> MailingRead:
    mailing = await service.patch(
        session, mailing_id, data=data, clock=clock, notify=_notify(request)
    )
    return await _read_one(session, mailing, watch)


@router.delete(
    "/{mailing_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a mailing",
    description="Sending stops and its messages are deleted.",
    responses=error_responses(401, 404, 422),
)
async def delete_mailing(
    mailing_id: MailingId, request: Request, session: SessionDep, halt: HaltDep
) -> None:
    await service.delete(session, mailing_id, notify=_notify(request), halt=halt)


@router.post(
    "/{mailing_id}/start",
    summary="Start a scheduled mailing now",
    responses=error_responses(401, 404, 409, 422),
)
async def start_mailing(
    mailing_id: MailingId,
    request: Request,
    session: SessionDep,
    watch: WorkerWatchDep,
    clock: ClockDep,
) -> MailingRead:
    mailing = await service.start(session, mailing_id, clock=clock, notify=_notify(request))
    return await _read_one(session, mailing, watch)


@router.post(
    "/{mailing_id}/cancel",
    summary="Cancel a mailing",
    description="No further message is sent; messages not yet final become cancelled.",
    responses=error_responses(401, 404, 409, 422),
)
async def cancel_mailing(
    mailing_id: MailingId,
    request: Request,
    session: SessionDep,
    watch: WorkerWatchDep,
    clock: ClockDep,
    halt: HaltDep,
) -> MailingRead:
    mailing = await service.cancel(
        session, mailing_id, clock=clock, notify=_notify(request), halt=halt
    )
    return await _read_one(session, mailing, watch)


@router.get(
    "/{mailing_id}/audience",
    summary="Preview the audience of a mailing",
    description=(
        "As POST /mailings/preview, for this mailing's filter and send window as they are now. "
        "Once the mailing started, its messages are its audience: see its stats."
    ),
    responses=error_responses(401, 404, 422),
)
async def mailing_audience(
    mailing_id: MailingId, session: SessionDep, clock: ClockDep
) -> AudiencePreview:
    return await service.audience_of(session, mailing_id, now=clock())


@router.post(
    "/{mailing_id}/pause",
    summary="Pause a running mailing",
    description=(
        "No request to the provider starts once this answers; requests already on their way "
        "finish and their outcomes count. Messages a worker had claimed go back to the queue. "
        "A paused mailing keeps its end_time: if it passes, the mailing completes and what was "
        "not sent expires. Pausing a paused mailing changes nothing."
    ),
    responses=error_responses(401, 404, 409, 422),
)
async def pause_mailing(
    mailing_id: MailingId,
    session: SessionDep,
    watch: WorkerWatchDep,
    clock: ClockDep,
    halt: HaltDep,
) -> MailingRead:
    mailing = await service.pause(session, mailing_id, clock=clock, halt=halt)
    return await _read_one(session, mailing, watch)


@router.post(
    "/{mailing_id}/resume",
    summary="Resume a paused mailing",
    description=(
        "Sending goes on exactly where it stopped: only messages not sent yet go. 409 if its "
        "end_time has passed. Resuming a running mailing changes nothing."
    ),
    responses=error_responses(401, 404, 409, 422),
)
async def resume_mailing(
    mailing_id: MailingId,
    request: Request,
    session: SessionDep,
    watch: WorkerWatchDep,
    clock: ClockDep,
) -> MailingRead:
    mailing = await service.resume(session, mailing_id, clock=clock, notify=_notify(request))
    return await _read_one(session, mailing, watch)


@router.post(
    "/{mailing_id}/retry-failed",
    summary="Send a mailing's failed messages again",
    description=(
        "Its failed messages (and expired ones with include_expired) become pending again, "
        "each with a fresh set of attempts, and a completed mailing runs again. The body is "
        "optional; end_time moves the mailing's end first (needed when it has passed). 409 "
        "for a scheduled or cancelled mailing."
    ),
    responses=error_responses(401, 404, 409, 415, 422),
)
async def retry_failed(
    mailing_id: MailingId,
    request: Request,
    session: SessionDep,
    watch: WorkerWatchDep,
    clock: ClockDep,
    data: Annotated[RetryFailed | None, Body(examples=[{"include_expired": True}])] = None,
) -> RetryFailedRead:
    data = data or RetryFailed()
    mailing, requeued = await service.retry_failed(
        session,
        mailing_id,
        include_expired=data.include_expired,
        end_time=data.end_time,
        clock=clock,
        notify=_notify(request),
    )
    return RetryFailedRead(requeued=requeued, mailing=await _read_one(session, mailing, watch))


@router.post(
    "/{mailing_id}/test",
    dependencies=[JsonBody],
    summary="Send a test of a mailing to one phone",
    description=(
        "Sends this mailing's text now, whatever its status and send window, to one phone (or "
        "client) through the provider, and returns the provider's answer. Nothing is retried, "
        "and the mailing's statistics are not touched: test sends are listed apart, at "
        "GET /mailings/{id}/tests. The provider gets the id 2^62 + the test send's id, so it "
        "never confuses a test with a message. 409 for an opted-out client; 503 when no "
        "provider is configured in this process."
    ),
    responses=error_responses(401, 404, 409, 413, 415, 422, 503),
)
async def test_send(
    mailing_id: MailingId,
    data: TestSendCreate,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> TestSendRead:
    record, text = await test_sends.begin(
        session, mailing_id, phone=data.phone, client_id=data.client_id, now=clock()
    )
    if request.app.state.engine is None and settings.provider_url is None:
        # Before the commit below: the record is rolled back with the request.
        raise ServiceUnavailable(
            "no provider is configured in this process: set NOTIFLOW_PROVIDER_URL"
        )
    # No transaction is open while the provider answers (on SQLite it would hold the write lock).
    await commit(session)
    async with _provider(request, settings) as provider:
        answer = await provider.try_once(
            test_sends.provider_id(record),
            record.phone,
            text,
            seconds=settings.provider_timeout,
        )
    record = await test_sends.finish(session, record.id, answer)
    return TestSendRead(
        **{name: getattr(record, name) for name in _TEST_SEND_FIELDS},
        provider_message_id=test_sends.provider_id(record),
        answer=answer.body,
    )


_TEST_SEND_FIELDS = (
    "id",
    "mailing_id",
    "client_id",
    "phone",
    "verdict",
    "status_code",
    "error",
    "latency_ms",
    "created_at",
)


@asynccontextmanager
async def _provider(request: Request, settings: Settings) -> AsyncIterator[ProviderClient]:
    """The provider this process sends to: the engine's, or one made for this request."""
    engine = request.app.state.engine
    if engine is not None:
        yield engine.provider
        return
    if settings.provider_url is None:
        raise ServiceUnavailable(
            "no provider is configured in this process: set NOTIFLOW_PROVIDER_URL"
        )
    async with ProviderClient(
        settings.provider_url, settings.provider_token, concurrency=1
    ) as provider:
        yield provider


@router.get(
    "/{mailing_id}/tests",
    summary="List a mailing's test sends, newest first",
    responses=error_responses(401, 404, 422),
)
async def list_test_sends(
    mailing_id: MailingId, session: SessionDep, page: PageDep
) -> Page[TestSendRead]:
    rows, total = await test_sends.list_page(
        session, mailing_id, limit=page.limit, offset=page.offset
    )
    return Page[TestSendRead](
        items=[
            TestSendRead(
                **{name: getattr(r, name) for name in _TEST_SEND_FIELDS},
                provider_message_id=test_sends.provider_id(r),
            )
            for r in rows
        ],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


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
