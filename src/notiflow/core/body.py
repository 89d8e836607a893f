"""Reading raw request bodies with a size limit and a content-type check."""

from __future__ import annotations

from collections.abc import Collection

from fastapi import Depends, Request

from notiflow.core.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def require_media_type(request: Request, allowed: Collection[str]) -> str:
    kind = media_type(request)
    if kind not in allowed:
        shown = kind or "none"
        raise UnsupportedMediaType(
            f"Content-Type {shown!r} is not supported here; send one of: {', '.join(allowed)}"
        )
    return kind


def require_json(request: Request) -> None:
    """Dependency of endpoints with a JSON body: any other content type is 415, not 422."""
    kind = media_type(request)
    if kind != "application/json" and not kind.endswith("+json"):
        shown = kind or "none"
        raise UnsupportedMediaType(
            f"Content-Type {shown!r} is not supported here; send application/json"
        )


JsonBody = Depends(require_json)


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is larger than the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise InvalidInput("the body is empty")
    return body
