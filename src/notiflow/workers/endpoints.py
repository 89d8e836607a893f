"""The delivery engines, from their heartbeats. A read: any token (notiflow.auth.roles)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from notiflow.core.errors import error_responses
from notiflow.core.pagination import Page, PageDep
from notiflow.deps import ClockDep, SessionDep
from notiflow.models import Worker
from notiflow.workers import service
from notiflow.workers.schemas import WorkerRead

router = APIRouter(prefix="/workers", tags=["workers"])


def _read(worker: Worker, now: datetime) -> WorkerRead:
    return WorkerRead(
        name=worker.name,
        host=worker.host,
        pid=worker.pid,
        version=worker.version,
        started_at=worker.started_at,
        last_beat_at=worker.last_beat_at,
        stopped_at=worker.stopped_at,
        alive=service.is_alive(worker, now),
        in_flight=worker.in_flight,
        sent=worker.sent,
        provider=worker.provider,
        provider_error=worker.provider_error,
        error=worker.error,
        problems=worker.problems,
    )


@router.get(
    "",
    summary="List the workers alive, the most recently started first",
    description=(
        "Every delivery engine (`notiflow worker`, or the one inside `notiflow serve`) writes a "
        "row at start and refreshes it every NOTIFLOW_WORKER_HEARTBEAT_SECONDS. This lists those "
        "alive: not stopped, and seen in the last minute. `all=true` adds those stopped or not "
        "seen lately (`alive: false`), for a day after their last beat."
    ),
    responses=error_responses(401, 422),
)
async def list_workers(
    session: SessionDep,
    clock: ClockDep,
    page: PageDep,
    include_all: Annotated[
        bool,
        Query(alias="all", description="Also the workers stopped or not seen in the last minute."),
    ] = False,
) -> Page[WorkerRead]:
    now = clock()
    workers, total = await service.list_page(
        session, now=now, include_all=include_all, limit=page.limit, offset=page.offset
    )
    return Page[WorkerRead](
        items=[_read(worker, now) for worker in workers],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )
