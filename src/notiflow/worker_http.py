"""The HTTP endpoint of one ``notiflow worker``, on NOTIFLOW_WORKER_HOST:NOTIFLOW_WORKER_PORT:
``/metrics`` (this worker's metrics), ``/health``, ``/health/live`` and ``/health/ready`` — the
same answers, by the same rules, as the API's (``notiflow.health``), for Prometheus and for an
orchestrator's probes. A small aiohttp server in the worker's own event loop.
"""

from __future__ import annotations

import errno
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from notiflow.config import Settings
from notiflow.core.errors import ErrorBody
from notiflow.health import service
from notiflow.metrics.core import Metrics, authorized

if TYPE_CHECKING:
    from notiflow.delivery.engine import Engine

log = logging.getLogger("notiflow.worker")


class WorkerPortError(Exception):
    """The worker cannot listen where it is told to (one sentence, for the command line)."""


class WorkerEndpoint:
    def __init__(self, *, settings: Settings, metrics: Metrics, db_engine: AsyncEngine) -> None:
        self._settings = settings
        self._metrics = metrics
        self._db = db_engine
        self.engine: Engine | None = None  # set once the engine exists
        self.port = settings.worker_port
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics_page)
        app.router.add_get("/health", self._health)
        app.router.add_get("/health/live", self._live)
        app.router.add_get("/health/ready", self._ready)
        return app

    async def start(self) -> str:
        """Listen; return the base URL. Raise :class:`WorkerPortError` when the port is taken or
        the address cannot be used."""
        host, port = self._settings.worker_host, self._settings.worker_port
        runner = web.AppRunner(self.app(), access_log=None, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            if exc.errno == errno.EADDRINUSE:
                raise WorkerPortError(
                    f"NOTIFLOW_WORKER_PORT: port {port} on {host} is already in use (another "
                    "worker on this host?); give each worker its own port, or 0 to serve none"
                ) from None
            raise WorkerPortError(
                f"NOTIFLOW_WORKER_HOST/NOTIFLOW_WORKER_PORT: cannot listen on {host}:{port} "
                f"({exc.strerror or exc})"
            ) from None
        self._runner = runner
        server: Any = site._server  # aiohttp has no public accessor for the bound port
        self.port = int(server.sockets[0].getsockname()[1])
        url = f"http://{host}:{self.port}"
        log.info(
            "worker endpoint listening",
            extra={"url": url, "paths": "/metrics /health /health/live /health/ready"},
        )
        return url

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _metrics_page(self, request: web.Request) -> web.StreamResponse:
        if not authorized(self._settings.metrics_token, request.headers.get("Authorization")):
            body = ErrorBody(
                detail="missing or wrong metrics token: send "
                "'Authorization: Bearer <NOTIFLOW_METRICS_TOKEN>'"
            )
            return web.json_response(
                body.model_dump(), status=401, headers={"WWW-Authenticate": "Bearer"}
            )
        payload, content_type = await self._metrics.render(request.headers.get("Accept"))
        response = web.Response(body=payload)
        response.headers["Content-Type"] = content_type
        return response

    async def _health(self, _request: web.Request) -> web.StreamResponse:
        body, status = await service.health(self._db, self.engine, runs_engine=True)
        return web.json_response(body.model_dump(), status=status)

    async def _live(self, _request: web.Request) -> web.StreamResponse:
        body, status = service.liveness()
        return web.json_response(body.model_dump(), status=status)

    async def _ready(self, _request: web.Request) -> web.StreamResponse:
        body, status = await service.readiness(self._db)
        return web.json_response(body.model_dump(), status=status)
