"""What the app knows about the route a request matched: its full template and dependencies.

``request.scope["route"]`` is the route as its own router declared it (``/mailings/{mailing_id}``,
with that router's dependencies); the template under which it is served
(``/api/v1/mailings/{mailing_id}``) and the dependencies of the routers that include it come
from FastAPI's route contexts. The role check and the audit log need both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute

API_PREFIX = "/api/v1"


@dataclass(frozen=True, slots=True)
class RouteInfo:
    path: str  # the full template, e.g. /api/v1/mailings/{mailing_id}/cancel
    methods: frozenset[str]
    dependencies: tuple[Any, ...]  # the app's, the routers' and the route's own, in that order
    regex: re.Pattern[str]


def api_routes(routes: Sequence[BaseRoute]) -> Iterator[tuple[APIRoute, RouteInfo]]:
    """Every FastAPI route of an app, with what it is served as."""
    for context in iter_route_contexts(routes):
        route = context.original_route
        if not isinstance(route, APIRoute):
            continue
        yield (
            route,
            RouteInfo(
                path=str(context.path_format),
                methods=frozenset(context.methods or ()),
                dependencies=tuple(context.dependencies),
                regex=context.path_regex,
            ),
        )


class RouteIndex:
    """Finds the :class:`RouteInfo` of a request's route; built on first use, rebuilt when a
    route it does not know shows up (routers included later)."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self._routes = routes
        self._by_route: dict[int, tuple[APIRoute, list[RouteInfo]]] = {}

    def _rebuild(self) -> None:
        index: dict[int, tuple[APIRoute, list[RouteInfo]]] = {}
        for route, info in api_routes(self._routes):
            index.setdefault(id(route), (route, []))[1].append(info)
        self._by_route = index

    def find(self, request: Request) -> RouteInfo | None:
        route = request.scope.get("route")
        if not isinstance(route, APIRoute):
            return None
        entry = self._by_route.get(id(route))
        if entry is None or entry[0] is not route:
            self._rebuild()
            entry = self._by_route.get(id(route))
            if entry is None:
                return None
        infos = entry[1]
        if len(infos) > 1:  # one route served under several prefixes: the one that matched
            path = request.scope.get("path", "")
            for info in infos:
                if info.regex.match(path):
                    return info
        return infos[0]


def route_info(request: Request) -> RouteInfo | None:
    index: RouteIndex = request.app.state.route_index
    return index.find(request)
