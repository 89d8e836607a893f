"""``/health``, ``/health/live`` and ``/health/ready`` of the API (no token needed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from notiflow.health import service
from notiflow.health.schemas import Health, Liveness, Readiness

router = APIRouter(tags=["service"])


@router.get(
    "/health",
    response_model=Health,
    summary="Health check (no token needed)",
    responses={
        503: {
            "model": Health,
            "description": "The database is unreachable, or this process's engine is dead "
            "or stalled.",
        }
    },
)
async def health(request: Request) -> Any:
    state = request.app.state
    body, status_code = await service.health(
        state.db_engine, state.engine, runs_engine=state.run_engine
    )
    return JSONResponse(body.model_dump(), status_code=status_code)


@router.get(
    "/health/live",
    response_model=Liveness,
    summary="Liveness probe: the process is up (no database access, no token)",
)
async def live() -> Any:
    body, status_code = service.liveness()
    return JSONResponse(body.model_dump(), status_code=status_code)


@router.get(
    "/health/ready",
    response_model=Readiness,
    summary="Readiness probe: the database answers and is migrated to head (no token)",
    responses={
        503: {
            "model": Readiness,
            "description": "The database is unreachable, or its schema is not at the head of "
            "this version's migrations.",
        }
    },
)
async def ready(request: Request) -> Any:
    body, status_code = await service.readiness(request.app.state.db_engine)
    return JSONResponse(body.model_dump(), status_code=status_code)
