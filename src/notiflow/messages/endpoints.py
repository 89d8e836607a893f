from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from notiflow.core.errors import error_responses
from notiflow.deps import SessionDep
from notiflow.messages import service
from notiflow.messages.schemas import MessageRead

router = APIRouter(prefix="/messages", tags=["messages"])


@router.get("/{message_id}", summary="Get a message", responses=error_responses(401, 404, 422))
async def get_message(
    message_id: Annotated[int, Path(ge=1, le=2**63 - 1, description="The message's id.")],
    session: SessionDep,
) -> MessageRead:
    message, phone = await service.get(session, message_id)
    return MessageRead.of(message, phone)
