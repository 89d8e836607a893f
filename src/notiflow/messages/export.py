"""A mailing's messages as CSV, streamed: read in keyset-paged chunks, never all in memory.

The request's own transaction (``SessionDep``) has committed by the time a streamed body is sent,
so the stream reads with sessions of its own: one short transaction per chunk, closed before the
chunk is handed to the client. No session is held while the client reads — on SQLite every
transaction takes the write lock — and nothing is left open when the client goes away: a
disconnect ends the stream between chunks, and a chunk being read is shielded from the
cancellation, so its session always closes normally.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import anyio
import anyio.lowlevel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notiflow.db.session import transaction
from notiflow.messages import repository
from notiflow.models import MessageStatus

CSV_MEDIA_TYPE = "text/csv"
CHUNK_ROWS = 5000
HEADER = (
    "id",
    "mailing_id",
    "client_id",
    "phone",
    "status",
    "attempts",
    "created_at",
    "sent_at",
    "next_attempt_at",
    "last_error",
    "updated_at",
)
EXAMPLE = (
    ",".join(HEADER) + "\r\n"
    "42,7,1,79001234567,sent,1,2026-11-22T10:00:00Z,2026-11-22T10:00:03Z,,,"
    "2026-11-22T10:00:03Z\r\n"
    "43,7,,,cancelled,0,2026-11-22T10:00:00Z,,,client deleted,2026-11-22T11:00:00Z\r\n"
)


def filename(mailing_id: int) -> str:
    return f"mailing-{mailing_id}-messages.csv"


def prefers_csv(accept: str | None) -> bool:
    """Whether an Accept header asks for CSV rather than JSON: ``text/csv`` named with a q above
    zero and above that of ``application/json`` (the first named wins a tie). Wildcards mean
    JSON, the default."""
    best: tuple[tuple[float, int], str] | None = None
    for position, part in enumerate((accept or "").split(",")):
        media, *params = (piece.strip() for piece in part.split(";"))
        media = media.lower()
        if media not in (CSV_MEDIA_TYPE, "application/json"):
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        key = (q, -position)
        if q > 0 and (best is None or key > best[0]):
            best = (key, media)
    return best is not None and best[1] == CSV_MEDIA_TYPE


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def _encode(rows: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows([_cell(value) for value in row] for row in rows)
    return buffer.getvalue().encode("utf-8")


async def csv_chunks(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    mailing_id: int,
    status: MessageStatus | None,
    chunk_rows: int = CHUNK_ROWS,
) -> AsyncIterator[bytes]:
    """The header, then every message of the mailing (of ``status``, if given) once, by id."""
    yield _encode([HEADER])
    after_id = 0
    while True:
        # Where a client that has gone away ends the stream. Needed: once the server knows the
        # client is gone, sending a chunk returns at once, and every other wait is shielded.
        await anyio.lowlevel.checkpoint()
        # A chunk is read whole, even if the client has gone meanwhile: its session then
        # closes normally instead of being cancelled half-way through a statement.
        with anyio.CancelScope(shield=True):
            async with transaction(sessionmaker) as session:
                rows = await repository.export_chunk(
                    session,
                    mailing_id=mailing_id,
                    status=status,
                    after_id=after_id,
                    limit=chunk_rows,
                )
        if not rows:
            return
        yield _encode(rows)
        if len(rows) < chunk_rows:
            return
        after_id = int(rows[-1][0])
