"""Reading raw request bodies, and content-type checks."""

from __future__ import annotations

from collections.abc import Collection

from fastapi import Depends, Request

from notiflow.core.errors import InvalidInput, UnsupportedMediaType


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _unsupported(kind: str, allowed: Collection[str]) -> UnsupportedMediaType:
    wanted = " or ".join(allowed)
    if not kind:
        return UnsupportedMediaType(f"the request has no Content-Type; send Content-Type: {wanted}")
    return UnsupportedMediaType(
        f"Content-Type {kind!r} is not supported here; send Content-Type: {wanted}"
    )


def require_media_type(request: Request, allowed: Collection[str]) -> str:
    kind = media_type(request)
    if kind not in allowed:
        raise _unsupported(kind, allowed)
    return kind


def require_json(request: Request) -> None:
    """Dependency of endpoints with a JSON body: any other content type is 415, not 422."""
    kind = media_type(request)
    if kind != "application/json" and not kind.endswith("+json"):
        raise _unsupported(kind, ("application/json",))


JsonBody = Depends(require_json)


async def read_body(request: Request) -> bytes:
    """The whole body, which must not be empty.

    Its size limit is FastAPI's ``max_body_size``, enforced while it is read (see
    ``notiflow.core.body_limit``).
    """
    body = await request.body()
    if not body:
        raise InvalidInput("the body is empty")
    return body
