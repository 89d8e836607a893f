"""What a service adds to the audit entry of the request it serves, e.g. the counts of an import.

A note goes into the session, which is the request's: nothing here knows about HTTP. Outside a
request (the CLI, the engine) a note is simply never read. Never put a token or a whole phone
number in a note: ``mask_phone`` keeps enough of one to recognise it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

_NOTES = "notiflow.audit.notes"


def note(session: AsyncSession, **fields: Any) -> None:
    """Add ``fields`` (JSON values) to the detail of the current request's audit entry."""
    session.info.setdefault(_NOTES, {}).update(fields)


def take_notes(session: AsyncSession) -> dict[str, Any]:
    notes: dict[str, Any] = session.info.pop(_NOTES, {})
    return notes


def mask_phone(phone: str) -> str:
    """``79001234567`` → ``7900*****67``."""
    if len(phone) <= 6:
        return "*" * len(phone)
    return phone[:4] + "*" * (len(phone) - 6) + phone[-2:]
