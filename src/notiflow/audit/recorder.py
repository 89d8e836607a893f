"""The audit hook of /api/v1: one entry for every write that succeeds, in its own transaction.

``record_writes`` is a dependency of the whole /api/v1 router, so every endpoint — those added
later too — is covered without a line of its own. It runs after ``require_token`` (which it
depends on) and inside the request's transaction (``SessionDep``): the code after its ``yield``
runs only once the endpoint has returned without an error, and before the transaction commits.
So a write that fails (4xx, 5xx, an error at commit) leaves no entry, and a write that commits
always has one. Refused requests are not recorded (they are logged).

What an entry says is derived from the route's template and method (:func:`target_of`):
``POST /api/v1/mailings`` is ``mailing.create``, ``POST /api/v1/mailings/{mailing_id}/cancel``
is ``mailing.cancel`` on the mailing of the path, ``POST /api/v1/clients/import`` is
``client.import``, ``DELETE /api/v1/tokens/{token_id}`` is ``token.delete``. A create's object id
is that of the row the request inserted into the collection's table (an ORM insert seen at
flush). Services may add to the detail with ``notiflow.audit.notes.note``.

Each entry is also logged at INFO (``api write``) once its transaction has committed: who (the
token's name), what (the action, method and route), the object's id as ``<type>_id`` (a create's
too) and the notes but a phone; the request's context adds its request_id and path ids.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from fastapi import Request
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, UOWTransaction

from notiflow.audit import service
from notiflow.audit.notes import take_notes
from notiflow.auth.dependencies import Access, AccessDep
from notiflow.core.request_context import sane_request_id
from notiflow.core.routes import API_PREFIX
from notiflow.db.session import on_commit
from notiflow.deps import ClockDep, SessionDep

log = logging.getLogger("notiflow.api")

_VERBS = {"POST": "create", "PUT": "replace", "PATCH": "update", "DELETE": "delete"}
_MAX_ID = 2**63 - 1
_LONG_DIGITS = re.compile(r"\d{7,}")  # a phone, in any form, in a path parameter


@dataclass(frozen=True, slots=True)
class Target:
    """What a write does to what, as far as its route tells."""

    action: str
    object_type: str | None
    id_param: str | None  # the path parameter that holds the object's id
    collection: str | None  # the path segment naming the object's collection, e.g. "mailings"
    creates: bool  # a POST to the collection itself: the object is the row it inserts


def _param(segment: str) -> str | None:
    if segment.startswith("{") and segment.endswith("}"):
        return segment[1:-1].split(":", 1)[0]
    return None


def _singular(collection: str) -> str:
    return collection[:-1] if collection.endswith("s") else collection


def target_of(route: str, method: str) -> Target:
    """``mailing.cancel`` and the rest, from a route's template and its method."""
    method = method.upper()
    segments = [s for s in route.removeprefix(API_PREFIX).split("/") if s]
    params = [i for i, segment in enumerate(segments) if _param(segment) is not None]
    if params:
        last = params[-1]
        id_param = _param(segments[last])
        collection = segments[last - 1] if last > 0 and last - 1 not in params else None
        rest = segments[last + 1 :]
    else:
        id_param, collection = None, segments[0] if segments else None
        rest = segments[1:]
    if collection is None:
        return Target(f"{method} {route}", None, id_param, None, creates=False)
    object_type = _singular(collection)
    verb = ".".join(rest) if rest else _VERBS.get(method, method.lower())
    creates = id_param is None and not rest and method == "POST"
    return Target(f"{object_type}.{verb}", object_type, id_param, collection, creates)


def _as_id(value: Any) -> int | None:
    text = str(value)
    if text.isascii() and text.isdigit() and 0 < int(text) <= _MAX_ID:
        return int(text)
    return None


def track_inserts(session: AsyncSession) -> list[Any]:
    """The ORM objects the session inserts from now on, in order."""
    inserted: list[Any] = []

    def after_flush(flushed: Session, _context: UOWTransaction) -> None:
        inserted.extend(flushed.new)

    event.listen(session.sync_session, "after_flush", after_flush)
    return inserted


def _created_id(target: Target, inserted: list[Any]) -> int | None:
    """The id of the row a create inserted into its collection's table (``mailings``,
    ``api_tokens`` for ``tokens``); else of the first row it inserted."""
    rows = [row for row in inserted if isinstance(getattr(row, "id", None), int)]
    if not rows:
        return None
    collection = (target.collection or "").replace("-", "_")
    for row in rows:
        if collection and str(getattr(row, "__tablename__", "")).endswith(collection):
            return int(row.id)
    return int(rows[0].id)


def _request_id(request: Request) -> str | None:
    """The X-Request-ID the client sent, if sane (the one the log context holds then)."""
    return sane_request_id(request.headers.get("x-request-id"))


def _object_ids(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if key.endswith("_id")}


def _log_fields(
    access: Access, target: Target, object_id: int | None, notes: dict[str, Any]
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "actor": access.principal.name,
        "action": target.action,
        "method": access.method,
        "route": access.route,
    }
    if object_id is not None and target.object_type is not None:
        fields[f"{target.object_type.replace('-', '_')}_id"] = object_id
    shown = {key: value for key, value in notes.items() if key != "phone"}  # never at INFO
    if shown:
        fields["detail"] = shown
    return fields


async def record_writes(
    request: Request, access: AccessDep, session: SessionDep, clock: ClockDep
) -> AsyncIterator[None]:
    """Write the audit entry of a successful write, in the request's transaction."""
    if not access.is_write:
        yield
        return
    inserted = track_inserts(session)
    yield
    # Reached only when the endpoint succeeded.
    await write_entry(
        session,
        access=access,
        at=clock(),
        path_params=dict(request.path_params),
        request_id=_request_id(request),
        inserted=inserted,
    )


async def write_entry(
    session: AsyncSession,
    *,
    access: Access,
    at: datetime,
    path_params: dict[str, Any],
    request_id: str | None = None,
    inserted: list[Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """The audit entry of a write ``access`` made, in ``session``'s transaction: what it did is
    read from ``access.route`` (an /api/v1 template) and ``path_params``. The admin UI writes
    its entries with this too, naming the API route its action stands for."""
    # Flush what the write left pending, so the ids of the rows it created are known.
    await session.flush()
    target = target_of(access.route, access.method)
    path_params = dict(path_params)
    object_id = None
    if target.creates:
        object_id = _created_id(target, inserted or [])
    elif target.id_param is not None:
        object_id = _as_id(path_params.pop(target.id_param, None))
    detail: dict[str, Any] = {}
    if request_id is not None:
        detail["request_id"] = request_id
    if access.principal.token_id is not None:
        detail["token_id"] = access.principal.token_id
    if path_params:
        detail["params"] = {
            name: _LONG_DIGITS.sub(lambda m: m.group()[:4] + "…", str(value))[:100]
            for name, value in path_params.items()
        }
    detail.update(extra or {})
    notes = take_notes(session)
    detail.update(notes)
    fields = _log_fields(access, target, object_id, notes)

    def committed() -> None:
        log.info("api write", extra=fields)
        if target.creates and object_id is not None:  # the rest of the request is about it
            structlog.contextvars.bind_contextvars(**_object_ids(fields))

    on_commit(session, committed, first=True)  # who did it, then what the services tell
    await service.record(
        session,
        at=at,
        actor=access.principal.name,
        action=target.action,
        method=access.method,
        route=access.route,
        object_type=target.object_type,
        object_id=object_id,
        detail=detail,
    )
