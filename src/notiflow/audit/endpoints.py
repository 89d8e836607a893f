"""The audit log, newest first. Admins only (notiflow.auth.roles: /api/v1/audit needs admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field

from notiflow.audit import service
from notiflow.audit.repository import AuditFilter
from notiflow.audit.schemas import AuditEntryRead
from notiflow.core.errors import error_responses
from notiflow.core.pagination import Page, PageDep
from notiflow.core.types import BlankIsNone, SafeText, UtcDatetime
from notiflow.deps import SessionDep

router = APIRouter(prefix="/audit", tags=["audit"])

Name = Annotated[SafeText, Field(max_length=100)]
ObjectType = Annotated[SafeText, Field(max_length=50)]


@router.get(
    "",
    summary="The audit log, newest first",
    description=(
        "Every write made through the API that succeeded (POST, PUT, PATCH, DELETE): who, what, "
        "to which object, when. An entry is written in the same transaction as the write, so "
        "a write that failed has none. Refused requests (401, 403, 4xx) are not recorded."
    ),
    responses=error_responses(401, 422),
)
async def list_audit(
    session: SessionDep,
    page: PageDep,
    actor: Annotated[Name | None, BlankIsNone, Query(description="Exact token name.")] = None,
    action: Annotated[
        Name | None, BlankIsNone, Query(description="Exact action, e.g. `mailing.cancel`.")
    ] = None,
    object_type: Annotated[
        ObjectType | None, BlankIsNone, Query(description="Exact object type, e.g. `mailing`.")
    ] = None,
    object_id: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="The object's id.")
    ] = None,
    since: Annotated[
        UtcDatetime | None, Query(description="Only entries at or after this instant.")
    ] = None,
    until: Annotated[
        UtcDatetime | None, Query(description="Only entries before this instant.")
    ] = None,
) -> Page[AuditEntryRead]:
    where = AuditFilter(
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        since=since,
        until=until,
    )
    entries, total = await service.list_page(session, where, limit=page.limit, offset=page.offset)
    return Page[AuditEntryRead](
        items=[AuditEntryRead.model_validate(e) for e in entries],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )
