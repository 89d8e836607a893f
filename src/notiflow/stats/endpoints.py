from __future__ import annotations

from fastapi import APIRouter

from notiflow.core.errors import error_responses
from notiflow.deps import SessionDep
from notiflow.stats import service
from notiflow.stats.schemas import OverallStats

router = APIRouter(tags=["stats"])


@router.get(
    "/stats",
    summary="Overall statistics",
    description="Mailings by status and messages by status over every mailing.",
    responses=error_responses(401),
)
async def overall_stats(session: SessionDep) -> OverallStats:
    return await service.overall(session)
