from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from notiflow.core.errors import error_responses
from notiflow.deps import ClockDep, SessionDep
from notiflow.stats import service
from notiflow.stats.schemas import OverallStats, Timeline

router = APIRouter(tags=["stats"])

Hours = Annotated[
    int,
    Query(
        ge=1,
        le=service.MAX_HOURS,
        description=f"How many hours back, the current minute included (1 to {service.MAX_HOURS}).",
    ),
]
MailingId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The mailing's id.")]


@router.get(
    "/stats",
    summary="Overall statistics",
    description="Mailings by status and messages by status over every mailing.",
    responses=error_responses(401),
)
async def overall_stats(session: SessionDep) -> OverallStats:
    return await service.overall(session)


@router.get(
    "/stats/timeline",
    summary="Messages per minute, every mailing",
    description="Messages sent and failed for good in each minute of the last `hours` hours, "
    "over every mailing: `hours × 60` points, the current (unfinished) minute last, 0 for a "
    "quiet minute. Expired and cancelled messages are not counted here (see `/stats`).",
    responses=error_responses(401, 422),
)
async def recent_timeline(
    session: SessionDep, clock: ClockDep, hours: Hours = service.DEFAULT_HOURS
) -> Timeline:
    return await service.recent_timeline(session, now=clock(), hours=hours)


@router.get(
    "/mailings/{mailing_id}/timeline",
    tags=["mailings"],
    summary="Messages per minute of a mailing",
    description="The mailing's messages sent and failed for good in each minute, from the "
    "minute of its first outcome to now (to its last outcome once it is completed or "
    f"cancelled), at most the last {service.MAX_HOURS} hours; 0 for a quiet minute. Before "
    "its first outcome, `start` and `end` are null and `points` is empty.",
    responses=error_responses(401, 404, 422),
)
async def mailing_timeline(mailing_id: MailingId, session: SessionDep, clock: ClockDep) -> Timeline:
    return await service.mailing_timeline(session, mailing_id, now=clock())
