"""Roles of API tokens, and the one rule that says which role each endpoint needs.

A token's role is ``read``, ``send`` or ``admin``; each includes the one before it. The role an
endpoint needs is decided here, once, for every route of ``/api/v1`` — including routes added
later by anyone, who gets the right answer without doing anything:

1. an explicit ``require_role(...)`` among the route's dependencies (the route's own, or its
   router's; the route's own wins) — e.g. ``dependencies=[require_role("read")]`` on a POST that
   only computes something (a preview);
2. otherwise, a path under one of :data:`ADMIN_AREAS` needs ``admin``, whatever the method;
3. otherwise, the HTTP method: GET, HEAD and OPTIONS need ``read``, DELETE needs ``admin``, any
   other method (POST, PUT, PATCH) needs ``send``.

``notiflow.auth.dependencies.require_token`` enforces it on every request; ``document_roles``
writes it into each operation of the OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from fastapi import Depends
from fastapi.params import Depends as DependsParam
from starlette.routing import BaseRoute

from notiflow.core.routes import API_PREFIX, RouteInfo, api_routes


class Role(StrEnum):
    read = "read"
    send = "send"
    admin = "admin"

    def allows(self, needed: Role) -> bool:
        """Whether a token of this role may do what ``needed`` is required for."""
        return _RANK[self] >= _RANK[needed]


_RANK = {Role.read: 0, Role.send: 1, Role.admin: 2}

ROLE_DESCRIPTIONS = {
    Role.read: "GET only: read clients, mailings, messages, statistics and exports.",
    Role.send: "read, plus create, edit, import and control: clients and mailings (create, edit, "
    "start, cancel and the other actions under /mailings/{id}/…), the client import.",
    Role.admin: "send, plus tokens, webhooks, the audit log and every DELETE.",
}

# Whole areas of the API that only admins may use, reads included.
ADMIN_AREAS = tuple(f"{API_PREFIX}/{area}" for area in ("tokens", "webhooks", "audit"))

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

RoleName = Literal["read", "send", "admin"]


@dataclass(frozen=True, slots=True)
class RoleRequirement:
    """The marker that ``require_role`` puts among a route's dependencies.

    It does nothing when called: ``required_role`` finds it on the route and ``require_token``
    (which runs first, on every /api/v1 route) enforces it, so the 403 always comes before any
    other work of the endpoint.
    """

    role: Role

    def __call__(self) -> None:
        return None


def require_role(role: RoleName | Role) -> Any:
    """A dependency that sets the role a route (or every route of a router) needs.

    ``@router.post("/{id}/preview", dependencies=[require_role("read")])`` or
    ``APIRouter(prefix="/webhooks", dependencies=[require_role("admin")])``.
    """
    return Depends(RoleRequirement(Role(role)))


def _explicit(route: RouteInfo) -> Role | None:
    found = None
    for dependency in route.dependencies:  # the app's, the routers' and then the route's own
        if isinstance(dependency, DependsParam) and isinstance(
            dependency.dependency, RoleRequirement
        ):
            found = dependency.dependency.role
    return found


def default_role(method: str, path: str) -> Role:
    """The role a route needs when it says nothing itself: by area, then by method."""
    if any(path == area or path.startswith(area + "/") for area in ADMIN_AREAS):
        return Role.admin
    method = method.upper()
    if method in READ_METHODS:
        return Role.read
    if method == "DELETE":
        return Role.admin
    return Role.send


def required_role(route: RouteInfo, method: str) -> Role:
    """The role ``method`` on ``route`` needs (see the module's docstring)."""
    return _explicit(route) or default_role(method, route.path)


RULE_MARKDOWN = """
| role | may use |
|---|---|
| `read` | {read} |
| `send` | {send} |
| `admin` | {admin} |

Each endpoint's description says which role it needs. The rule: GET needs `read`; POST, PUT and
PATCH need `send`; DELETE needs `admin`; everything under `/api/v1/tokens`, `/api/v1/webhooks` and
`/api/v1/audit` needs `admin`; an endpoint may state its own (a POST that changes nothing needs
`read`). A token whose role is too low gets `403`.
""".format(**{role.value: text for role, text in ROLE_DESCRIPTIONS.items()})


_FORBIDDEN = {
    "description": "The token's role is too low; the answer names the role needed.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
}


def document_roles(openapi: dict[str, Any], routes: Sequence[BaseRoute]) -> None:
    """Write into each /api/v1 operation of an OpenAPI document the role it needs, and its 403."""
    paths = openapi.get("paths", {})
    for _route, info in api_routes(routes):
        if not info.path.startswith(API_PREFIX + "/"):
            continue
        for method in info.methods:
            operation = paths.get(info.path, {}).get(method.lower())
            if operation is None:
                continue
            role = required_role(info, method)
            higher = {Role.read: " or higher", Role.send: " or `admin`", Role.admin: ""}[role]
            text = f"**Role:** `{role.value}`{higher}."
            description = operation.get("description", "")
            operation["description"] = f"{description}\n\n{text}" if description else text
            operation.setdefault("responses", {}).setdefault("403", _FORBIDDEN)
