"""``GET /metrics`` of the API: the Prometheus exposition of this process (docs/metrics.md)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from notiflow.auth.dependencies import Unauthorized
from notiflow.core.errors import ErrorBody
from notiflow.metrics.core import Metrics, authorized

router = APIRouter(tags=["service"])

EXAMPLE = """\
# HELP notiflow_messages_total Messages that reached an outcome, counted by the process that \
stored it.
# TYPE notiflow_messages_total counter
notiflow_messages_total{outcome="sent"} 1000.0
notiflow_messages_total{outcome="failed"} 2.0
# HELP notiflow_mailings Mailings by status.
# TYPE notiflow_mailings gauge
notiflow_mailings{status="running"} 1.0
"""


@router.get(
    "/metrics",
    summary="Prometheus metrics of this process (no token unless NOTIFLOW_METRICS_TOKEN is set)",
    description="The Prometheus text format (OpenMetrics when the scraper asks for it). Every "
    "metric, its type, labels and meaning: docs/metrics.md. With `NOTIFLOW_METRICS_TOKEN` set, "
    "it needs `Authorization: Bearer <that token>`; the API tokens do not open it.",
    response_class=Response,
    responses={
        200: {
            "description": "The metrics.",
            "content": {"text/plain": {"schema": {"type": "string"}, "example": EXAMPLE}},
        },
        401: {
            "model": ErrorBody,
            "description": "NOTIFLOW_METRICS_TOKEN is set and the request did not bring it.",
        },
    },
)
async def metrics(request: Request) -> Response:
    expected: str = request.app.state.settings.metrics_token
    if not authorized(expected, request.headers.get("authorization")):
        raise Unauthorized(
            "missing or wrong metrics token: send 'Authorization: Bearer <NOTIFLOW_METRICS_TOKEN>'"
        )
    registry: Metrics = request.app.state.metrics
    body, content_type = await registry.render(request.headers.get("accept"))
    return Response(body, media_type=content_type)
