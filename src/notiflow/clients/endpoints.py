from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from notiflow.clients import service
from notiflow.clients.schemas import (
    ClientCreate,
    ClientPatch,
    ClientRead,
    ClientReplace,
    ImportMode,
    ImportResult,
    PhonePart,
)
from notiflow.core.body import JsonBody, read_body, require_media_type
from notiflow.core.errors import error_responses
from notiflow.core.pagination import Page, PageDep
from notiflow.core.types import BlankIsNone, OperatorCode, Phone, Tag
from notiflow.deps import ClockDep, HaltDep, SessionDep, SettingsDep

router = APIRouter(prefix="/clients", tags=["clients"])
# The import alone: create_app gives it its own body limit, NOTIFLOW_IMPORT_MAX_BYTES.
import_router = APIRouter(prefix="/clients", tags=["clients"])

ClientId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The client's id.")]

_IMPORT_BODY = {
    "required": True,
    "description": (
        "CSV whose header names `phone` and any of `operator_code`, `tag`, `timezone` (other "
        "columns are ignored and listed in `ignored_columns`; `,`, `;` or tab separated, as "
        "the header line shows; a UTF-8 BOM is fine), or a JSON array of clients. Clients are "
        "matched by phone: new ones are created (what a record lacks takes its default), "
        "existing ones updated as `mode` says. Phones may be written `+7 (900) 123-45-67` or "
        "`8 900 123 45 67`. An `opted_out` column (true/false, 1/0, yes/no) opts clients out "
        "(their unsent messages are cancelled, as by POST /clients/{id}/opt-out) or back in; "
        "without it, in either mode, the flag stays as it is."
    ),
    "content": {
        "text/csv": {
            "schema": {"type": "string"},
            "example": (
                "phone,operator_code,tag,timezone\n"
                "79001234567,900,vip,Europe/Moscow\n"
                "+7 916 123-45-67,,,+03:00\n"
            ),
        },
        "application/json": {
            "schema": {"type": "array", "items": {"$ref": "#/components/schemas/ClientCreate"}},
            "example": [
                {"phone": "79001234567", "tag": "vip", "timezone": "Europe/Moscow"},
                {"phone": 79161234567},
            ],
        },
    },
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[JsonBody],
    summary="Add a client",
    responses=error_responses(401, 409, 413, 415, 422),
)
async def create_client(
    data: ClientCreate, session: SessionDep, settings: SettingsDep, clock: ClockDep
) -> ClientRead:
    client = await service.create(
        session, data=data, default_timezone=settings.default_timezone, clock=clock
    )
    return ClientRead.model_validate(client)


@router.get("", summary="List clients", responses=error_responses(401, 422))
async def list_clients(
    session: SessionDep,
    page: PageDep,
    tag: Annotated[Tag | None, BlankIsNone, Query(description="Exact tag.")] = None,
    operator_code: Annotated[
        OperatorCode | None, BlankIsNone, Query(description="Exact operator code.")
    ] = None,
    phone: Annotated[Phone | None, BlankIsNone, Query(description="Exact phone.")] = None,
    phone_contains: Annotated[
        PhonePart | None,
        BlankIsNone,
        Query(
            description=(
                "Part of a phone: the clients whose phone has these digits somewhere "
                "(`4567` finds 79001234567; spaces, dashes, + and parentheses are ignored)."
            )
        ),
    ] = None,
) -> Page[ClientRead]:
    clients, total = await service.list_page(
        session,
        tag=tag,
        operator_code=operator_code,
        phone=phone,
        phone_contains=phone_contains,
        limit=page.limit,
        offset=page.offset,
    )
    return Page[ClientRead](
        items=[ClientRead.model_validate(c) for c in clients],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/{client_id}", summary="Get a client", responses=error_responses(401, 404, 422))
async def get_client(client_id: ClientId, session: SessionDep) -> ClientRead:
    return ClientRead.model_validate(await service.get(session, client_id))


@router.put(
    "/{client_id}",
    dependencies=[JsonBody],
    summary="Replace a client",
    responses=error_responses(401, 404, 409, 413, 415, 422),
)
async def replace_client(
    client_id: ClientId,
    data: ClientReplace,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> ClientRead:
    client = await service.replace(
        session, client_id, data=data, default_timezone=settings.default_timezone, clock=clock
    )
    return ClientRead.model_validate(client)


@router.patch(
    "/{client_id}",
    dependencies=[JsonBody],
    summary="Change some fields of a client",
    responses=error_responses(401, 404, 409, 413, 415, 422),
)
async def patch_client(
    client_id: ClientId, data: ClientPatch, session: SessionDep, clock: ClockDep
) -> ClientRead:
    client = await service.patch(session, client_id, data=data, clock=clock)
    return ClientRead.model_validate(client)


@router.delete(
    "/{client_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a client",
    description="Its messages not yet sent are cancelled and never sent; sent history is kept.",
    responses=error_responses(401, 404, 422),
)
async def delete_client(
    client_id: ClientId, session: SessionDep, clock: ClockDep, halt: HaltDep
) -> None:
    await service.delete(session, client_id, clock=clock, halt=halt)


@router.post(
    "/{client_id}/opt-out",
    summary="Opt a client out",
    description=(
        "The client receives nothing more: it is left out of every audience written from now "
        "on, and its messages not sent yet, in every mailing, become cancelled with the reason "
        "'client opted out' (no request for them starts once this answers). Opting out twice "
        "changes nothing."
    ),
    responses=error_responses(401, 404, 422),
)
async def opt_out_client(
    client_id: ClientId, session: SessionDep, clock: ClockDep, halt: HaltDep
) -> ClientRead:
    return ClientRead.model_validate(
        await service.opt_out(session, client_id, clock=clock, halt=halt)
    )


@router.post(
    "/{client_id}/opt-in",
    summary="Opt a client back in",
    description=(
        "The client is in audiences again from now on; messages cancelled by its opt-out stay "
        "cancelled."
    ),
    responses=error_responses(401, 404, 422),
)
async def opt_in_client(client_id: ClientId, session: SessionDep, clock: ClockDep) -> ClientRead:
    return ClientRead.model_validate(await service.opt_in(session, client_id, clock=clock))


@import_router.post(
    "/import",
    summary="Import clients from CSV or JSON (upsert by phone)",
    openapi_extra={"requestBody": _IMPORT_BODY},
    responses=error_responses(401, 413, 415, 422),
)
async def import_clients(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    halt: HaltDep,
    mode: Annotated[
        ImportMode,
        Query(
            description=(
                "`merge` (default): an existing client gets only the columns the file has (a "
                "JSON object: its own keys). `replace`: each record is the client's whole "
                "state, as in PUT, and what it lacks takes its default."
            )
        ),
    ] = "merge",
) -> ImportResult:
    kind = require_media_type(request, ("text/csv", "application/json"))
    body = await read_body(request)
    return await service.import_clients(
        session,
        body=body,
        content_type=kind,
        mode=mode,
        default_timezone=settings.default_timezone,
        clock=clock,
        halt=halt,
    )
