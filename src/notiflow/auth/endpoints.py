"""Stored API tokens: list, create (the token is shown once), revoke. Admins only (see
notiflow.auth.roles: the whole of /api/v1/tokens needs admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from notiflow.auth import service
from notiflow.auth.schemas import TokenCreate, TokenCreated, TokenRead
from notiflow.core.body import JsonBody
from notiflow.core.errors import error_responses
from notiflow.core.pagination import Page, PageDep
from notiflow.deps import SessionDep

router = APIRouter(prefix="/tokens", tags=["tokens"])

TokenId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The token's id.")]


@router.get(
    "",
    summary="List stored tokens",
    description="Ids, names and roles; the tokens themselves are not stored. Tokens from "
    "the environment (NOTIFLOW_API_TOKENS …) are not listed.",
    responses=error_responses(401, 422),
)
async def list_tokens(session: SessionDep, page: PageDep) -> Page[TokenRead]:
    tokens, total = await service.list_page(session, limit=page.limit, offset=page.offset)
    return Page[TokenRead](
        items=[TokenRead.model_validate(t) for t in tokens],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[JsonBody],
    summary="Make a token",
    description="The answer holds the token itself, shown this once: only its hash is stored.",
    responses=error_responses(401, 413, 415, 422),
)
async def create_token(data: TokenCreate, session: SessionDep) -> TokenCreated:
    token, plain = await service.create(session, name=data.name, role=data.role)
    return TokenCreated(
        id=token.id, name=token.name, role=data.role, created_at=token.created_at, token=plain
    )


@router.delete(
    "/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a stored token",
    description="Requests with it are refused (401) from then on.",
    responses=error_responses(401, 404, 422),
)
async def delete_token(token_id: TokenId, session: SessionDep) -> None:
    await service.delete(session, token_id)
