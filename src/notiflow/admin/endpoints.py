"""The admin UI's pages: thin handlers over the same services as the API.

Pages render templates/; actions are HTML forms posted here (with the session's CSRF token),
which call the service the matching /api/v1 endpoint calls, write the same audit entry, and
redirect back with a message (errors from the service included: never a 500).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Form, Path, Query, Request, status
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from notiflow.admin import access, audience, charts, settings_page
from notiflow.admin import clients as client_pages
from notiflow.admin.access import UiPrincipal
from notiflow.admin.errors import ActionRefused, install_error_pages
from notiflow.admin.forms import MailingForm, duration_text
from notiflow.admin.oidc_endpoints import install as install_oidc_sign_in
from notiflow.admin.oidc_endpoints import logout_offer, offer_logout, sign_in_context
from notiflow.admin.rendering import HERE, flash, redirect, render
from notiflow.admin.session import UI_PREFIX, UiSessions, safe_next, session_key
from notiflow.audit.recorder import track_inserts
from notiflow.auth import service as auth
from notiflow.auth.principal import configured_tokens
from notiflow.core.errors import AppError, NotFound
from notiflow.core.types import BlankIsNone
from notiflow.deps import (
    ClockDep,
    HaltDep,
    SessionDep,
    SessionmakerDep,
    SettingsDep,
    WorkerWatchDep,
)
from notiflow.mailings import service as mailings
from notiflow.messages import export
from notiflow.messages import service as messages
from notiflow.models import Mailing, MailingStatus, MessageStatus
from notiflow.stats import service as stats
from notiflow.stats.schemas import MessageCounts
from notiflow.workers import service as workers

PAGE_SIZE = 50
POLL_SECONDS = 2
MailingId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Offset = Annotated[int, Query(ge=0, le=2**31)]

router = APIRouter(prefix=UI_PREFIX, include_in_schema=False)
pages = APIRouter(dependencies=[Depends(access.require_principal), Depends(access.check_csrf)])


_safe_next = safe_next  # where to go after signing in: a path of the UI, never another site


# --- sign-in ---------------------------------------------------------------------------------


@router.get("/sign-in")
async def sign_in_page(
    request: Request, settings: SettingsDep, next: str | None = None
) -> HTMLResponse:
    target = _safe_next(next)
    context = {"next": target, "error": None}
    return render(request, "sign_in.html", context | sign_in_context(request, settings, target))


@router.post("/sign-in", dependencies=[Depends(access.check_csrf)])
async def sign_in(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str, Form(max_length=1000)] = "",
    next: Annotated[str | None, Form()] = None,
) -> Response:
    token_hash = auth.hash_token(token.strip())
    principal = await auth.authenticate_hash(
        session, token_hash, configured=configured_tokens(settings)
    )
    if principal is None:
        target = _safe_next(next)
        context = {"next": target, "error": "That token is not valid: check it and retry."}
        return render(
            request,
            "sign_in.html",
            context | sign_in_context(request, settings, target),
            status_code=status.HTTP_401_UNAUTHORIZED,
        )
    access.sign_in(request, token_hash)
    return redirect(_safe_next(next))


@router.post("/sign-out", dependencies=[Depends(access.check_csrf)])
async def sign_out(request: Request) -> Response:
    provider_logout = await logout_offer(request)  # offered on the next page
    access.sign_out(request)
    if provider_logout is not None:
        offer_logout(request, provider_logout)
    return redirect(f"{UI_PREFIX}/sign-in")


# --- dashboard -------------------------------------------------------------------------------


def _start_of_day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


@pages.get("/")
async def dashboard(request: Request, session: SessionDep, clock: ClockDep) -> HTMLResponse:
    now = clock()
    overall = await stats.overall(session)
    sent_today, failed_today = await stats.outcomes_since(session, _start_of_day(now))
    live, _total = await workers.list_page(session, now=now, include_all=False, limit=100, offset=0)
    engine = request.app.state.engine
    return render(
        request,
        "dashboard.html",
        {
            "overall": overall,
            "sent_today": sent_today,
            "failed_today": failed_today,
            # This process's engine knows its provider best; else the workers' heartbeats.
            "engine": engine.health() if engine is not None else None,
            "workers": live,
            "chart": charts.chart(
                request,
                source="/charts/timeline.json",
                empty=f"Nothing sent in the last {stats.DEFAULT_HOURS} hours.",
                refresh=True,
            ),
            "chart_hours": stats.DEFAULT_HOURS,
        },
    )


# --- mailings --------------------------------------------------------------------------------


async def _rows(
    session: SessionDep, now: datetime, status_filter: MailingStatus | None, offset: int
) -> dict[str, Any]:
    found, total = await mailings.list_page(
        session, status=status_filter, limit=PAGE_SIZE, offset=offset
    )
    ids = [m.id for m in found]
    counts = await stats.counts_for(session, ids)
    rates = await stats.rates(session, ids, now=now)
    return {
        "mailings": [(m, counts[m.id], rates[m.id], _progress(counts[m.id])) for m in found],
        "total": total,
        "offset": offset,
        "limit": PAGE_SIZE,
        "status_filter": status_filter.value if status_filter else "",
        "statuses": [s.value for s in MailingStatus],
        "polling": any(m.status == MailingStatus.running for m in found),
        "poll_seconds": POLL_SECONDS,
    }


def _progress(counts: MessageCounts) -> int:
    """Percent of a mailing's messages that reached a final status."""
    if counts.total == 0:
        return 0
    return int(100 * (counts.total - counts.pending - counts.sending) / counts.total)


@pages.get("/mailings")
async def mailings_page(
    request: Request,
    principal: UiPrincipal,
    session: SessionDep,
    clock: ClockDep,
    status_filter: Annotated[MailingStatus | None, BlankIsNone, Query(alias="status")] = None,
    offset: Offset = 0,
) -> HTMLResponse:
    context = await _rows(session, clock(), status_filter, offset)
    context["can_create"] = access.allowed(request, principal, access.CREATE)
    return render(request, "mailings.html", context)


@pages.get("/mailings/rows")
async def mailings_rows(
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    status_filter: Annotated[MailingStatus | None, BlankIsNone, Query(alias="status")] = None,
    offset: Offset = 0,
) -> HTMLResponse:
    """The table of the mailings page alone, which polls itself while a mailing runs."""
    context = await _rows(session, clock(), status_filter, offset)
    return render(request, "_mailing_rows.html", context)


def _form_page(
    request: Request,
    form: MailingForm,
    *,
    mailing: Mailing | None,
    status_code: int = 200,
    cloned_from: Mailing | None = None,
) -> HTMLResponse:
    context: dict[str, Any] = {"form": form, "mailing": mailing, "active": "mailings"}
    if cloned_from is not None:
        context["cloned_from"] = cloned_from
        context["clone_lasts"] = duration_text(cloned_from.end_time - cloned_from.start_time)
    return render(request, "mailing_form.html", context, status_code=status_code)


@pages.get("/mailings/new")
async def new_mailing_page(
    request: Request,
    principal: UiPrincipal,
    session: SessionDep,
    clock: ClockDep,
    source: Annotated[int | None, Query(alias="from", ge=1, le=2**63 - 1)] = None,
) -> HTMLResponse:
    """The form of a new mailing; ``?from=ID`` fills it in from mailing ID (Clone): saved
    through the same create as any other."""
    access.access_for(request, principal, access.CREATE)
    if source is None:
        return _form_page(request, MailingForm.parse({}), mailing=None)
    original = await mailings.get(session, source)
    form = MailingForm.cloned(original, now=clock())
    return _form_page(request, form, mailing=None, cloned_from=original)


@pages.post("/mailings/new")
async def create_mailing(
    request: Request, principal: UiPrincipal, session: SessionDep, clock: ClockDep
) -> Response:
    """POST /api/v1/mailings from a form: the API's schema and service, errors by field."""
    granted = access.access_for(request, principal, access.CREATE)
    form = MailingForm.parse(await request.form())
    data = form.validate()
    if data is None:
        return _form_page(request, form, mailing=None, status_code=422)
    inserted = track_inserts(session)
    notify = request.app.state.engine_signal.notify
    try:
        mailing = await mailings.create(session, data=data, clock=clock, notify=notify)
    except AppError as exc:
        await session.rollback()  # nothing of a refused create is kept
        form.refused(exc)
        return _form_page(request, form, mailing=None, status_code=exc.status_code)
    await access.record(session, access=granted, clock=clock, params={}, inserted=inserted)
    flash(request, "ok", f"Mailing {mailing.id} was created.")
    return redirect(f"{UI_PREFIX}/mailings/{mailing.id}")


@pages.get("/mailings/{mailing_id}/edit")
async def edit_mailing_page(
    request: Request, principal: UiPrincipal, mailing_id: MailingId, session: SessionDep
) -> HTMLResponse:
    access.access_for(request, principal, access.EDIT)
    mailing = await mailings.get(session, mailing_id)
    return _form_page(request, MailingForm.of(mailing), mailing=mailing)


@pages.post("/mailings/{mailing_id}/edit")
async def edit_mailing(
    request: Request,
    principal: UiPrincipal,
    mailing_id: MailingId,
    session: SessionDep,
    clock: ClockDep,
) -> Response:
    """PUT /api/v1/mailings/{id} from a form: the same rules (a running mailing may change only
    its end time and send window), errors by field."""
    granted = access.access_for(request, principal, access.EDIT)
    mailing = await mailings.get(session, mailing_id)
    form = MailingForm.parse(await request.form())
    data = form.validate()
    if data is None:
        return _form_page(request, form, mailing=mailing, status_code=422)
    notify = request.app.state.engine_signal.notify
    try:
        await mailings.replace(session, mailing_id, data=data, clock=clock, notify=notify)
    except NotFound:
        raise
    except AppError as exc:
        await session.rollback()
        form.refused(exc)
        mailing = await mailings.get(session, mailing_id)
        return _form_page(request, form, mailing=mailing, status_code=exc.status_code)
    await access.record(session, access=granted, clock=clock, params={"mailing_id": mailing_id})
    flash(request, "ok", f"Mailing {mailing_id} was saved.")
    return redirect(f"{UI_PREFIX}/mailings/{mailing_id}")


def _actions(request: Request, principal: UiPrincipal, mailing: Mailing) -> list[str]:
    """The actions to offer: those the role allows, for a mailing in a state they apply to."""
    applies = {
        "start": mailing.status == MailingStatus.scheduled,
        "pause": mailing.status == MailingStatus.running,
        "resume": mailing.status == MailingStatus.paused,
        "cancel": mailing.status
        in (MailingStatus.scheduled, MailingStatus.running, MailingStatus.paused),
    }
    shown = [
        name
        for name, action in access.MAILING_ACTIONS.items()
        if applies[name] and access.allowed(request, principal, action)
    ]
    if access.allowed(request, principal, access.DELETE):
        shown.append("delete")
    return shown


def _buttons(request: Request, principal: UiPrincipal, mailing: Mailing) -> dict[str, Any]:
    """What _mailing_actions.html offers for the mailing as it is now."""
    return {
        "actions": _actions(request, principal, mailing),
        "can_clone": access.allowed(request, principal, access.CREATE),
        "can_edit": mailing.status not in (MailingStatus.completed, MailingStatus.cancelled)
        and access.allowed(request, principal, access.EDIT),
    }


@pages.get("/mailings/{mailing_id}")
async def mailing_page(
    request: Request,
    principal: UiPrincipal,
    mailing_id: MailingId,
    session: SessionDep,
    watch: WorkerWatchDep,
    message_status: Annotated[MessageStatus | None, BlankIsNone, Query(alias="status")] = None,
    offset: Offset = 0,
) -> HTMLResponse:
    mailing = await mailings.get(session, mailing_id)
    summary = await stats.for_mailing(session, mailing_id)
    rows, total = await messages.list_page(
        session, mailing_id=mailing_id, status=message_status, limit=PAGE_SIZE, offset=offset
    )
    warnings = await watch.warnings(session, [mailing])
    return render(
        request,
        "mailing.html",
        {
            "mailing": mailing,
            "summary": summary,
            "progress": _progress(summary.stats),
            "warnings": warnings.get(mailing.id, []),
            "messages": rows,
            "total": total,
            "offset": offset,
            "limit": PAGE_SIZE,
            "status_filter": message_status.value if message_status else "",
            "statuses": [s.value for s in MessageStatus],
            **_buttons(request, principal, mailing),
            "poll_seconds": POLL_SECONDS,
            "chart": charts.chart(
                request,
                source=f"/mailings/{mailing.id}/timeline.json",
                empty="Nothing sent yet.",
                refresh=mailing.status == MailingStatus.running,
            ),
        },
    )


@pages.get("/mailings/{mailing_id}/counts")
async def mailing_counts(
    request: Request, principal: UiPrincipal, mailing_id: MailingId, session: SessionDep
) -> HTMLResponse:
    """The counts of a mailing's page alone, which polls itself while the mailing runs (with
    the heading's badge and the buttons, out of band)."""
    mailing = await mailings.get(session, mailing_id)
    summary = await stats.for_mailing(session, mailing_id)
    return render(
        request,
        "_mailing_counts.html",
        {
            "mailing": mailing,
            "summary": summary,
            "progress": _progress(summary.stats),
            "statuses": [s.value for s in MessageStatus],
            "poll_seconds": POLL_SECONDS,
            **_buttons(request, principal, mailing),
        },
    )


@pages.get("/mailings/{mailing_id}/messages.csv")
async def mailing_export(
    mailing_id: MailingId,
    session: SessionDep,
    sessionmaker: SessionmakerDep,
    message_status: Annotated[MessageStatus | None, BlankIsNone, Query(alias="status")] = None,
) -> StreamingResponse:
    """The API's CSV export (GET /api/v1/mailings/{id}/messages?format=csv), for the session."""
    await mailings.get(session, mailing_id)
    return StreamingResponse(
        export.csv_chunks(sessionmaker, mailing_id=mailing_id, status=message_status),
        media_type=f"{export.CSV_MEDIA_TYPE}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{export.filename(mailing_id)}"'},
    )


_DONE = {"start": "started", "pause": "paused", "resume": "resumed", "cancel": "cancelled"}


@pages.post("/mailings/{mailing_id}/delete")
async def delete_mailing(
    request: Request,
    principal: UiPrincipal,
    mailing_id: MailingId,
    session: SessionDep,
    clock: ClockDep,
    halt: HaltDep,
) -> Response:
    granted = access.access_for(request, principal, access.DELETE)
    try:
        await mailings.delete(
            session, mailing_id, notify=request.app.state.engine_signal.notify, halt=halt
        )
    except NotFound:
        raise
    except AppError as exc:
        raise ActionRefused(exc.body().detail, f"{UI_PREFIX}/mailings/{mailing_id}") from exc
    await access.record(session, access=granted, clock=clock, params={"mailing_id": mailing_id})
    flash(request, "ok", f"Mailing {mailing_id} was deleted.")
    return redirect(f"{UI_PREFIX}/mailings")


@pages.post("/mailings/{mailing_id}/{action}")
async def mailing_action(
    request: Request,
    principal: UiPrincipal,
    mailing_id: MailingId,
    action: Literal["start", "pause", "resume", "cancel"],
    session: SessionDep,
    clock: ClockDep,
    halt: HaltDep,
) -> Response:
    granted = access.access_for(request, principal, access.MAILING_ACTIONS[action])
    notify = request.app.state.engine_signal.notify
    here = f"{UI_PREFIX}/mailings/{mailing_id}"
    try:
        if action == "start":
            await mailings.start(session, mailing_id, clock=clock, notify=notify)
        elif action == "pause":
            await mailings.pause(
                session,
                mailing_id,
                clock=clock,
                halt=halt,
                reason=f"paused in the admin UI by {principal.name}",
            )
        elif action == "resume":
            await mailings.resume(session, mailing_id, clock=clock, notify=notify)
        else:
            await mailings.cancel(session, mailing_id, clock=clock, notify=notify, halt=halt)
    except NotFound:
        raise
    except AppError as exc:
        raise ActionRefused(exc.body().detail, here) from exc
    await access.record(session, access=granted, clock=clock, params={"mailing_id": mailing_id})
    flash(request, "ok", f"Mailing {mailing_id} was {_DONE[action]}.")
    return redirect(here)


# Before pages: /mailings/preview would otherwise be read as /mailings/{mailing_id}.
router.include_router(audience.router)
router.include_router(settings_page.router)
router.include_router(pages)


# --- wiring ----------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    """Serve the UI under /ui: its routes, static files, session cookie and HTML error pages
    (the API's JSON errors stay as they are everywhere else)."""
    install_oidc_sign_in(app, app.state.settings)  # /ui/auth/oidc: sign-in through OIDC
    app.include_router(charts.router)
    app.include_router(router)
    client_pages.install(app)  # /ui/clients: the client pages (admin/clients.py)
    app.mount(f"{UI_PREFIX}/static", StaticFiles(directory=HERE / "static"), name="ui-static")

    async def load_key() -> str:
        return await session_key(app.state.sessionmaker, app.state.settings, app.state.clock)

    app.add_middleware(UiSessions, load_key=load_key)
    install_error_pages(app)
