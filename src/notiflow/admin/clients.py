"""The admin UI's client pages (/ui/clients): the address book, over the same services as
/api/v1/clients.

A list searched by phone (whole or part), tag and operator code; create, edit and delete; opt-out
and opt-in; and the CSV import, whose row-level errors are shown as the service reports them.
Every write needs the role of the API route it stands for and writes that route's audit entry
(``via: ui``), as the mailing pages do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict
from starlette.datastructures import UploadFile

from notiflow.admin import access
from notiflow.admin.access import UiPrincipal
from notiflow.admin.forms import ClientForm, SchemaForm
from notiflow.admin.rendering import flash, redirect, render
from notiflow.admin.session import UI_PREFIX
from notiflow.audit.recorder import track_inserts
from notiflow.clients import service as clients
from notiflow.clients.schemas import ImportMode, ImportResult, PhonePart
from notiflow.clients.service import IMPORT_COLUMNS
from notiflow.core.errors import AppError, NotFound
from notiflow.core.types import OperatorCode, Tag, normalize_phone
from notiflow.deps import ClockDep, HaltDep, SessionDep, SettingsDep
from notiflow.models import Client

PAGE_SIZE = 50
HERE = f"{UI_PREFIX}/clients"
ClientId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Offset = Annotated[int, Query(ge=0, le=2**31)]
SearchText = Annotated[str, Query(max_length=300)]


async def _close_upload(request: Request) -> AsyncIterator[None]:
    """Close the uploaded file's spool once the request is answered, refused ones too (the
    CSRF check reads the form before the page does)."""
    try:
        yield
    finally:
        await request.close()


_GUARDS = [Depends(access.require_principal), Depends(access.check_csrf)]
pages = APIRouter(prefix="/clients", dependencies=_GUARDS)
# The import alone: ``install`` gives it the API import's body limit (NOTIFLOW_IMPORT_MAX_BYTES).
upload = APIRouter(prefix="/clients", dependencies=[Depends(_close_upload), *_GUARDS])


# --- the list --------------------------------------------------------------------------------


class ClientSearch(BaseModel):
    """The list's filters, checked by the API's types for GET /api/v1/clients."""

    model_config = ConfigDict(extra="forbid")

    phone: PhonePart | None = None
    tag: Tag | None = None
    operator_code: OperatorCode | None = None


class SearchForm(SchemaForm[ClientSearch]):
    FIELDS = ("phone", "tag", "operator_code")

    @classmethod
    def schema(cls) -> type[ClientSearch]:
        return ClientSearch

    def body(self) -> dict[str, Any]:
        return {name: value for name, value in self.values.items() if value}

    def query(self) -> str:
        """The filters as typed, for the pager's links."""
        return urlencode(self.body())


def _phone_filters(search: ClientSearch, typed: str) -> dict[str, str | None]:
    """A whole phone, in any form the API accepts, is found exactly; anything shorter by the
    digits it has (the API's ``phone`` and ``phone_contains``)."""
    if search.phone is None:
        return {"phone": None, "phone_contains": None}
    try:
        return {"phone": normalize_phone(typed), "phone_contains": None}
    except ValueError:
        return {"phone": None, "phone_contains": search.phone}


@pages.get("")
async def clients_page(
    request: Request,
    principal: UiPrincipal,
    session: SessionDep,
    phone: SearchText = "",
    tag: SearchText = "",
    operator_code: SearchText = "",
    offset: Offset = 0,
) -> HTMLResponse:
    form = SearchForm.parse({"phone": phone, "tag": tag, "operator_code": operator_code})
    search = form.validate()
    found: list[Client] = []
    total = 0
    if search is not None:
        rows, total = await clients.list_page(
            session,
            tag=search.tag,
            operator_code=search.operator_code,
            **_phone_filters(search, form.values["phone"]),
            limit=PAGE_SIZE,
            offset=offset,
        )
        found = list(rows)
    return render(
        request,
        "clients.html",
        {
            "form": form,
            "clients": found,
            "total": total,
            "offset": offset,
            "limit": PAGE_SIZE,
            "pager_query": form.query(),
            "searching": bool(form.body()),
            "can_create": access.allowed(request, principal, access.CLIENT_CREATE),
            "can_import": access.allowed(request, principal, access.CLIENT_IMPORT),
        },
        status_code=200 if search is not None else 422,
    )


# --- create ----------------------------------------------------------------------------------


def _form_page(
    request: Request,
    principal: UiPrincipal,
    form: ClientForm,
    *,
    client: Client | None,
    status_code: int = 200,
) -> HTMLResponse:
    actions: list[str] = []
    if client is not None:
        offered = access.CLIENT_OPT_IN if client.opted_out_at else access.CLIENT_OPT_OUT
        if access.allowed(request, principal, offered):
            actions.append("opt-in" if client.opted_out_at else "opt-out")
        if access.allowed(request, principal, access.CLIENT_DELETE):
            actions.append("delete")
    can_save = access.allowed(
        request, principal, access.CLIENT_EDIT if client else access.CLIENT_CREATE
    )
    return render(
        request,
        "client_form.html",
        {
            "form": form,
            "client": client,
            "actions": actions,
            "can_save": can_save,
            "active": "clients",
        },
        status_code=status_code,
    )


@pages.get("/new")
async def new_client_page(request: Request, principal: UiPrincipal) -> HTMLResponse:
    access.access_for(request, principal, access.CLIENT_CREATE)
    return _form_page(request, principal, ClientForm.parse({}), client=None)


@pages.post("/new")
async def create_client(
    request: Request,
    principal: UiPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> Response:
    """POST /api/v1/clients from a form: the API's schema and service, errors by field."""
    granted = access.access_for(request, principal, access.CLIENT_CREATE)
    form = ClientForm.parse(await request.form())
    data = form.validate()
    if data is None:
        return _form_page(request, principal, form, client=None, status_code=422)
    inserted = track_inserts(session)
    try:
        client = await clients.create(
            session, data=data, default_timezone=settings.default_timezone, clock=clock
        )
    except AppError as exc:
        await session.rollback()  # nothing of a refused create is kept
        form.refused(exc)
        return _form_page(request, principal, form, client=None, status_code=exc.status_code)
    await access.record(session, access=granted, clock=clock, params={}, inserted=inserted)
    flash(request, "ok", f"Client {client.id} ({client.phone}) was created.")
    return redirect(f"{HERE}/{client.id}")


# --- import ----------------------------------------------------------------------------------


def _rejections(result: ImportResult) -> list[dict[str, Any]]:
    """The service's rejections as a table: its row number, and its message split into the
    column it names (``phone: required``) and what is wrong; a whole-row problem (a wrong
    number of cells) names no column."""
    table = []
    for item in result.rejected:
        column, _, message = item.error.partition(": ")
        if column not in IMPORT_COLUMNS or not message:
            column, message = "", item.error
        table.append({"row": item.row, "field": column, "message": message, "error": item.error})
    return table


def _import_page(
    request: Request,
    *,
    mode: str = "merge",
    error: str | None = None,
    result: ImportResult | None = None,
    filename: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "clients_import.html",
        {
            "mode": mode,
            "error": error,
            "result": result,
            "rejections": _rejections(result) if result else [],
            "filename": filename,
            "columns": IMPORT_COLUMNS,
            "active": "clients",
        },
        status_code=status_code,
    )


@pages.get("/import")
async def import_page(request: Request, principal: UiPrincipal) -> HTMLResponse:
    access.access_for(request, principal, access.CLIENT_IMPORT)
    return _import_page(request)


def _content_type(upload: UploadFile) -> str:
    """What the API's Content-Type would be: JSON for a .json file, else CSV (browsers label
    .csv files in several ways, text/csv, application/vnd.ms-excel…)."""
    name = (upload.filename or "").lower()
    if name.endswith(".json") or upload.content_type == "application/json":
        return "application/json"
    return "text/csv"


@upload.post("/import")
async def import_clients(
    request: Request,
    principal: UiPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    halt: HaltDep,
) -> Response:
    """POST /api/v1/clients/import from an uploaded file: the same service, its result shown
    with a table of the rows it rejected."""
    granted = access.access_for(request, principal, access.CLIENT_IMPORT)
    form = await request.form()
    chosen = form.get("mode")
    mode: ImportMode = "replace" if chosen == "replace" else "merge"
    file = form.get("file")
    if not isinstance(file, UploadFile) or not file.filename:
        return _import_page(
            request, mode=mode, error="Choose a CSV (or JSON) file to import.", status_code=422
        )
    body = await file.read()
    try:
        result = await clients.import_clients(
            session,
            body=body,
            content_type=_content_type(file),
            mode=mode,
            default_timezone=settings.default_timezone,
            clock=clock,
            halt=halt,
        )
    except AppError as exc:
        await session.rollback()
        return _import_page(
            request,
            mode=mode,
            error=f"{file.filename}: {exc.body().detail}",
            filename=file.filename,
            status_code=exc.status_code,
        )
    await access.record(session, access=granted, clock=clock, params={})
    return _import_page(request, mode=mode, result=result, filename=file.filename)


# --- one client ------------------------------------------------------------------------------


@pages.get("/{client_id}")
async def client_page(
    request: Request, principal: UiPrincipal, client_id: ClientId, session: SessionDep
) -> HTMLResponse:
    client = await clients.get(session, client_id)
    return _form_page(request, principal, ClientForm.of(client), client=client)


@pages.post("/{client_id}/edit")
async def edit_client(
    request: Request,
    principal: UiPrincipal,
    client_id: ClientId,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> Response:
    """PUT /api/v1/clients/{id} from a form: the whole client, errors by field."""
    granted = access.access_for(request, principal, access.CLIENT_EDIT)
    client = await clients.get(session, client_id)
    form = ClientForm.parse(await request.form())
    data = form.validate()
    if data is None:
        return _form_page(request, principal, form, client=client, status_code=422)
    try:
        await clients.replace(
            session,
            client_id,
            data=data,
            default_timezone=settings.default_timezone,
            clock=clock,
        )
    except NotFound:
        raise
    except AppError as exc:
        await session.rollback()
        form.refused(exc)
        client = await clients.get(session, client_id)
        return _form_page(request, principal, form, client=client, status_code=exc.status_code)
    await access.record(session, access=granted, clock=clock, params={"client_id": client_id})
    flash(request, "ok", f"Client {client_id} was saved.")
    return redirect(f"{HERE}/{client_id}")


@pages.post("/{client_id}/delete")
async def delete_client(
    request: Request,
    principal: UiPrincipal,
    client_id: ClientId,
    session: SessionDep,
    clock: ClockDep,
    halt: HaltDep,
) -> Response:
    granted = access.access_for(request, principal, access.CLIENT_DELETE)
    client = await clients.get(session, client_id)
    phone = client.phone
    await clients.delete(session, client_id, clock=clock, halt=halt)
    await access.record(session, access=granted, clock=clock, params={"client_id": client_id})
    flash(request, "ok", f"Client {client_id} ({phone}) was deleted.")
    return redirect(HERE)


@pages.post("/{client_id}/opt-out")
async def opt_out_client(
    request: Request,
    principal: UiPrincipal,
    client_id: ClientId,
    session: SessionDep,
    clock: ClockDep,
    halt: HaltDep,
) -> Response:
    granted = access.access_for(request, principal, access.CLIENT_OPT_OUT)
    await clients.opt_out(session, client_id, clock=clock, halt=halt)
    await access.record(session, access=granted, clock=clock, params={"client_id": client_id})
    flash(request, "ok", f"Client {client_id} opted out: it receives nothing more.")
    return redirect(f"{HERE}/{client_id}")


@pages.post("/{client_id}/opt-in")
async def opt_in_client(
    request: Request,
    principal: UiPrincipal,
    client_id: ClientId,
    session: SessionDep,
    clock: ClockDep,
) -> Response:
    granted = access.access_for(request, principal, access.CLIENT_OPT_IN)
    await clients.opt_in(session, client_id, clock=clock)
    await access.record(session, access=granted, clock=clock, params={"client_id": client_id})
    flash(request, "ok", f"Client {client_id} opted back in: it is in new audiences again.")
    return redirect(f"{HERE}/{client_id}")


# --- wiring ----------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    """Serve the client pages under /ui; the import takes files as large as the API's."""
    app.include_router(
        upload,
        prefix=UI_PREFIX,
        include_in_schema=False,
        max_body_size=app.state.settings.import_max_bytes,
    )
    app.include_router(pages, prefix=UI_PREFIX, include_in_schema=False)
