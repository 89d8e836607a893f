"""Request metrics of the API, by route template and status, from a pure ASGI middleware.

The route label is the template a request matched (``/api/v1/mailings/{mailing_id}``), never
the path itself, so its values are bounded by the routes of the app; a request that matched no
route is labelled ``unmatched``, a method outside the usual ones ``other``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.requests import Request
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notiflow.core.routes import RouteIndex

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._requests = Counter(
            "notiflow_http_requests",
            "Requests answered by the API, by method, route template and status code.",
            ["method", "route", "status"],
            registry=registry,
        )
        self._duration = Histogram(
            "notiflow_http_request_duration_seconds",
            "How long the API took to answer, by method and route template.",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=registry,
        )
        # The label children met so far: labels() is resolved once per (method, route, status).
        self._counted: dict[tuple[str, str, int], Counter] = {}
        self._timed: dict[tuple[str, str], Histogram] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        if method not in METHODS:
            method = "other"
        counter = self._counted.get((method, route, status))
        if counter is None:
            counter = self._counted[method, route, status] = self._requests.labels(
                method, route, str(status)
            )
        counter.inc()
        timer = self._timed.get((method, route))
        if timer is None:
            timer = self._timed[method, route] = self._duration.labels(method, route)
        timer.observe(seconds)


class HttpMetricsMiddleware:
    """Counts and times every HTTP request of the app it wraps (outermost, so that answers given
    by the other middleware, such as a 413, are counted too)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: HttpMetrics,
        index: Callable[[], RouteIndex],
        routes: Sequence[BaseRoute],
    ) -> None:
        self.app = app
        self._metrics = metrics
        self._index = index
        self._routes = routes  # the app's, as they are when a request comes
        self._plain: dict[object, str] = {}  # endpoint → template of the app's plain routes
        self._plain_of = -1  # how many routes the app had when ``_plain`` was made

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # what the server answers when the app fails before it answers

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            self._metrics.observe(
                scope["method"], self._template(scope), status, time.perf_counter() - began
            )

    def _template(self, scope: Scope) -> str:
        """The template of the route the request matched: FastAPI records its routes in the
        scope; the plain Starlette ones (/openapi.json) and mounts (/static) by their endpoint."""
        route = scope.get("route")
        if isinstance(route, APIRoute):
            info = self._index().find(Request(scope))
            return info.path if info is not None else UNMATCHED
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return UNMATCHED
        if len(self._routes) != self._plain_of:
            self._plain = {
                r.endpoint: r.path
                for r in self._routes
                if isinstance(r, Route) and not isinstance(r, APIRoute)
            }
            # A mounted app with no routes of its own (the static files): /static/{path}.
            self._plain.update({r.app: r.path_format for r in self._routes if isinstance(r, Mount)})
            self._plain_of = len(self._routes)
        return self._plain.get(endpoint, UNMATCHED)
