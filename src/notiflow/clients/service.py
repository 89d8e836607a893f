"""Rules of the address book."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.audit.notes import mask_phone, note
from notiflow.clients import repository
from notiflow.clients.schemas import ClientCreate, ClientPatch, ImportRejection, ImportResult
from notiflow.core.clock import Clock
from notiflow.core.errors import Conflict, InvalidInput, NotFound
from notiflow.core.timezones import normalize_timezone
from notiflow.core.types import check_operator_code, check_tag, check_text, normalize_phone
from notiflow.messages import repository as messages
from notiflow.models import Client

IMPORT_COLUMNS = ("phone", "operator_code", "tag", "timezone")


def operator_code_of(phone: str) -> str:
    """Digits 2–4 of a normalized phone: ``79001234567`` → ``900``."""
    return phone[1:4]


async def get(session: AsyncSession, client_id: int) -> Client:
    client = await repository.get(session, client_id)
    if client is None:
        raise NotFound(f"client {client_id} not found")
    return client


async def _ensure_phone_free(session: AsyncSession, phone: str, *, own_id: int | None) -> None:
    existing = await repository.get_by_phone(session, phone)
    if existing is not None and existing.id != own_id:
        raise Conflict(f"phone {phone} already belongs to client {existing.id}", field="phone")


async def create(
    session: AsyncSession, *, data: ClientCreate, default_timezone: str, clock: Clock
) -> Client:
    await _ensure_phone_free(session, data.phone, own_id=None)
    now = clock()
    client = Client(
        phone=data.phone,
        operator_code=data.operator_code or operator_code_of(data.phone),
        tag=data.tag,
        timezone=data.timezone or default_timezone,
        created_at=now,
        updated_at=now,
    )
    note(session, phone=mask_phone(data.phone))
    try:
        return await repository.add(session, client)
    except IntegrityError as exc:  # a concurrent request took the phone first
        raise Conflict(f"phone {data.phone} already exists", field="phone") from exc


async def replace(
    session: AsyncSession,
    client_id: int,
    *,
    data: ClientCreate,
    default_timezone: str,
    clock: Clock,
) -> Client:
    client = await get(session, client_id)
    await _ensure_phone_free(session, data.phone, own_id=client.id)
    client.phone = data.phone
    client.operator_code = data.operator_code or operator_code_of(data.phone)
    client.tag = data.tag
    client.timezone = data.timezone or default_timezone
    client.updated_at = clock()
    await _flush(session, client)
    return client


async def patch(
    session: AsyncSession, client_id: int, *, data: ClientPatch, clock: Clock
) -> Client:
    client = await get(session, client_id)
    sent = data.model_fields_set
    for required in ("phone", "operator_code", "timezone"):
        if required in sent and getattr(data, required) is None:
            raise InvalidInput("must not be null", field=required)
    if data.phone is not None:
        await _ensure_phone_free(session, data.phone, own_id=client.id)
        client.phone = data.phone
    if data.operator_code is not None:
        client.operator_code = data.operator_code
    if "tag" in sent:
        client.tag = data.tag
    if data.timezone is not None:
        client.timezone = data.timezone
    client.updated_at = clock()
    await _flush(session, client)
    return client


async def _flush(session: AsyncSession, client: Client) -> None:
    note(session, phone=mask_phone(client.phone))
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"phone {client.phone} already exists", field="phone") from exc


async def delete(session: AsyncSession, client_id: int, *, clock: Clock) -> None:
    client = await get(session, client_id)
    note(session, phone=mask_phone(client.phone))
    # Unsent messages are cancelled first, while they still point at the client.
    await messages.cancel_unsent_of_client(session, client_id, reason="client deleted", now=clock())
    await repository.remove(session, client_id)


async def list_page(
    session: AsyncSession,
    *,
    tag: str | None,
    operator_code: str | None,
    phone: str | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[Client], int]:
    return await repository.list_page(
        session, tag=tag, operator_code=operator_code, phone=phone, limit=limit, offset=offset
    )


# --- bulk import -----------------------------------------------------------------------------


@dataclass(slots=True)
class _ParsedRows:
    rows: list[tuple[int, dict[str, Any]]]
    rejected: list[ImportRejection]


def _optional(record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key}: must be a string")
    value = value.strip()
    return value or None


def _validate_record(record: Any, default_timezone: str) -> dict[str, Any]:
    """Check one imported record; raise ``ValueError`` with a message that names the field."""
    if not isinstance(record, dict):
        raise ValueError("must be an object with phone, operator_code, tag, timezone")
    unknown = set(record) - set(IMPORT_COLUMNS)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    try:
        phone = normalize_phone(record.get("phone"))
    except ValueError as exc:
        raise ValueError(f"phone: {exc}") from None
    operator_code = _optional(record, "operator_code")
    if operator_code is None:
        operator_code = operator_code_of(phone)
    else:
        try:
            check_operator_code(operator_code)
        except ValueError as exc:
            raise ValueError(f"operator_code: {exc}") from None
    tag = record.get("tag")
    if tag is not None:
        if not isinstance(tag, str):
            raise ValueError("tag: must be a string")
        try:
            check_tag(tag)
        except ValueError as exc:
            raise ValueError(f"tag: {exc}") from None
        tag = tag or None
    timezone = _optional(record, "timezone")
    try:
        timezone = normalize_timezone(check_text(timezone)) if timezone else default_timezone
    except ValueError as exc:
        raise ValueError(f"timezone: {exc}") from None
    return {"phone": phone, "operator_code": operator_code, "tag": tag, "timezone": timezone}


def _validate_all(records: Iterable[tuple[int, Any]], default_timezone: str) -> _ParsedRows:
    parsed = _ParsedRows(rows=[], rejected=[])
    first_row_of: dict[str, int] = {}
    for number, record in records:
        try:
            row = _validate_record(record, default_timezone)
        except ValueError as exc:
            parsed.rejected.append(ImportRejection(row=number, error=str(exc)))
            continue
        earlier = first_row_of.setdefault(row["phone"], number)
        if earlier != number:
            parsed.rejected.append(
                ImportRejection(row=number, error=f"phone: duplicate of row {earlier}")
            )
            continue
        parsed.rows.append((number, row))
    return parsed


def _csv_records(body: bytes) -> Iterable[tuple[int, Any]]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"the CSV body is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    if "\x00" in text:
        raise InvalidInput("the CSV body contains NUL characters")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput(
            "the CSV body is empty: expected a header phone,operator_code,tag,timezone"
        ) from None
    except csv.Error as exc:
        raise InvalidInput(f"the CSV header cannot be read: {exc}") from None
    columns = [name.strip().lower() for name in header]
    unknown = [name for name in columns if name not in IMPORT_COLUMNS]
    if unknown or "phone" not in columns or len(set(columns)) != len(columns):
        raise InvalidInput(
            "the CSV header must name the columns phone,operator_code,tag,timezone "
            f"(phone is required, each at most once); got {','.join(columns)!r}"
        )
    return _csv_rows(reader, columns)


def _csv_rows(reader: Any, columns: list[str]) -> Iterable[tuple[int, Any]]:
    number = 0
    while True:
        number += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield number, _BrokenRow(f"cannot parse the CSV row: {exc}")
            continue
        if not cells or all(not cell.strip() for cell in cells):
            number -= 1  # blank lines are not records
            continue
        if len(cells) != len(columns):
            yield number, _BrokenRow(f"expected {len(columns)} columns, got {len(cells)}")
            continue
        yield number, dict(zip(columns, cells, strict=True))


class _BrokenRow:
    def __init__(self, error: str) -> None:
        self.error = error


def _json_records(body: bytes) -> Iterable[tuple[int, Any]]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise InvalidInput("the JSON body must be an array of clients")
    return enumerate(data, start=1)


async def import_clients(
    session: AsyncSession,
    *,
    body: bytes,
    content_type: str,
    default_timezone: str,
    clock: Clock,
) -> ImportResult:
    """Upsert clients by phone from CSV or a JSON array. Bad records are reported, not written."""
    records = _csv_records(body) if content_type == "text/csv" else _json_records(body)
    broken: list[ImportRejection] = []

    def _good(items: Iterable[tuple[int, Any]]) -> Iterable[tuple[int, Any]]:
        for number, record in items:
            if isinstance(record, _BrokenRow):
                broken.append(ImportRejection(row=number, error=record.error))
            else:
                yield number, record

    parsed = _validate_all(_good(records), default_timezone)
    rows = [row for _, row in parsed.rows]
    existing = await repository.existing_phones(session, [row["phone"] for row in rows])
    await repository.upsert_many(session, rows, now=clock())
    rejected = sorted(broken + parsed.rejected, key=lambda item: item.row)
    result = ImportResult(
        created=len(rows) - len(existing), updated=len(existing), rejected=rejected
    )
    note(session, created=result.created, updated=result.updated, rejected=len(rejected))
    return result
