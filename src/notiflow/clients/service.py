"""Rules of the address book."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.audit.notes import mask_phone, note
from notiflow.clients import repository
from notiflow.clients.schemas import (
    ClientCreate,
    ClientPatch,
    ImportMode,
    ImportRejection,
    ImportResult,
)
from notiflow.core.clock import Clock
from notiflow.core.errors import Conflict, InvalidInput, NotFound
from notiflow.core.timezones import normalize_timezone
from notiflow.core.types import check_operator_code, check_tag, check_text, normalize_phone
from notiflow.delivery.notify import Halt, halt_after_commit
from notiflow.messages import repository as messages
from notiflow.models import Client

IMPORT_COLUMNS = ("phone", "operator_code", "tag", "timezone", "opted_out")
_TRUE = frozenset({"true", "1", "yes", "y"})
_FALSE = frozenset({"false", "0", "no", "n", ""})
# What an import may change of an existing client (the phone is how it is found).
UPDATABLE_COLUMNS = ("operator_code", "tag", "timezone")


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


async def delete(
    session: AsyncSession, client_id: int, *, clock: Clock, halt: Halt | None = None
) -> None:
    client = await get(session, client_id)
    note(session, phone=mask_phone(client.phone))
    # Unsent messages are cancelled first, while they still point at the client.
    await messages.cancel_unsent_of_client(session, client_id, reason="client deleted", now=clock())
    await repository.remove(session, client_id)
    await halt_after_commit(session, halt, "client", client_id)


OPTED_OUT = "client opted out"


async def opt_out(session: AsyncSession, client_id: int, *, clock: Clock, halt: Halt) -> Client:
    """The client receives nothing more: it leaves every audience, and its messages not sent
    yet are cancelled (no request for them starts once this commits)."""
    client = await get(session, client_id)
    if client.opted_out_at is not None:
        return client
    now = clock()
    await messages.cancel_unsent_of_client(session, client_id, reason=OPTED_OUT, now=now)
    client.opted_out_at = now
    client.updated_at = now
    await session.flush()
    await halt_after_commit(session, halt, "client", client_id)
    return client


async def opt_in(session: AsyncSession, client_id: int, *, clock: Clock) -> Client:
    """The client may receive mailings again (those whose audience is written from now on)."""
    client = await get(session, client_id)
    if client.opted_out_at is not None:
        client.opted_out_at = None
        client.updated_at = clock()
        await session.flush()
    return client


async def list_page(
    session: AsyncSession,
    *,
    tag: str | None,
    operator_code: str | None,
    phone: str | None,
    phone_contains: str | None = None,
    limit: int,
    offset: int,
) -> tuple[Sequence[Client], int]:
    """A page of clients by id; each filter given narrows it (``phone_contains``: digits the
    phone has somewhere, for a search by part of a number)."""
    return await repository.list_page(
        session,
        tag=tag,
        operator_code=operator_code,
        phone=phone,
        phone_contains=phone_contains,
        limit=limit,
        offset=offset,
    )


# --- bulk import -----------------------------------------------------------------------------
#
# A record names a phone and any of the other columns. In merge mode (the default) an existing
# client gets only the columns its record has (a CSV file: the file's columns; a JSON object:
# its own keys), each written as given, an empty cell or null meaning that column's default; in
# replace mode every record is the client's whole state, as in PUT. New phones take the
# defaults for what their record lacks, in both modes.

_SEPARATORS = (",", ";", "\t")


@dataclass(slots=True)
class _Row:
    values: dict[str, Any]
    # The columns an existing client gets from this record.
    columns: tuple[str, ...]


@dataclass(slots=True)
class _ParsedRows:
    rows: list[_Row]
    rejected: list[ImportRejection]
    # Phones whose record says opted_out true / false (a record without it changes nothing).
    opt_out: list[str] = field(default_factory=list)
    opt_in: list[str] = field(default_factory=list)


def _opted_out(record: dict[str, Any]) -> bool | None:
    """The record's opted_out flag: None when it has none."""
    if "opted_out" not in record:
        return None
    value = record["opted_out"]
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("opted_out: must be true or false (also 1/0, yes/no)")


def _optional(record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key}: must be a string")
    value = value.strip()
    return value or None


def _phone(record: dict[str, Any]) -> str:
    value = record.get("phone")
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("phone: required")
    try:
        return normalize_phone(value)
    except ValueError as exc:
        raise ValueError(f"phone: {exc}") from None


def _validate_record(record: dict[str, Any], default_timezone: str) -> dict[str, Any]:
    """Check one imported record (known columns only); raise ``ValueError`` naming the field."""
    phone = _phone(record)
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
        tag = tag or None  # "" is no tag, as in the API
    timezone = _optional(record, "timezone")
    try:
        timezone = normalize_timezone(check_text(timezone)) if timezone else default_timezone
    except ValueError as exc:
        raise ValueError(f"timezone: {exc}") from None
    return {
        "phone": phone,
        "operator_code": operator_code,
        "tag": tag,
        "timezone": timezone,
        "opted_out": _opted_out(record),
    }


def _validate_all(
    records: Iterable[tuple[int, dict[str, Any]]], *, default_timezone: str, mode: ImportMode
) -> _ParsedRows:
    parsed = _ParsedRows(rows=[], rejected=[])
    first_row_of: dict[str, int] = {}
    whole: tuple[str, ...] = UPDATABLE_COLUMNS
    for number, record in records:
        try:
            values = _validate_record(record, default_timezone)
        except ValueError as exc:
            parsed.rejected.append(ImportRejection(row=number, error=str(exc)))
            continue
        earlier = first_row_of.setdefault(values["phone"], number)
        if earlier != number:
            parsed.rejected.append(
                ImportRejection(row=number, error=f"phone: duplicate of row {earlier}")
            )
            continue
        if mode == "merge":
            columns = tuple(name for name in UPDATABLE_COLUMNS if name in record)
        else:
            columns = whole
        opted_out = values.pop("opted_out")
        if opted_out is not None:
            (parsed.opt_out if opted_out else parsed.opt_in).append(values["phone"])
        parsed.rows.append(_Row(values=values, columns=columns))
    return parsed


class _BrokenRow:
    def __init__(self, error: str) -> None:
        self.error = error


@dataclass(slots=True)
class _Records:
    """The records of a body, known columns only, and the names of the columns left out
    (``ignored`` is complete once ``items`` has been consumed: a JSON array is read lazily)."""

    items: Iterable[tuple[int, dict[str, Any] | _BrokenRow]]
    ignored: Callable[[], list[str]]


def _separator(text: str) -> str:
    """The separator of a CSV file: whichever of , ; and tab its header line has most of."""
    header = text.split("\n", 1)[0]
    counts = {separator: header.count(separator) for separator in _SEPARATORS}
    best = max(counts, key=lambda separator: counts[separator])
    return best if counts[best] else ","


def _csv_records(body: bytes) -> _Records:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"the CSV body is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    if "\x00" in text:
        raise InvalidInput("the CSV body contains NUL characters")
    separator = _separator(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput(
            "the CSV body is empty: expected a header such as phone,operator_code,tag,timezone"
        ) from None
    except csv.Error as exc:
        raise InvalidInput(f"the CSV header cannot be read: {exc}") from None
    columns = [name.strip().lower() for name in header]
    known = [name for name in columns if name in IMPORT_COLUMNS]
    if "phone" not in known or len(set(known)) != len(known):
        raise InvalidInput(
            "the CSV header must name a phone column, and may name operator_code, tag, "
            f"timezone and opted_out, each at most once; got {separator.join(columns)!r}"
        )
    ignored = [name for name in dict.fromkeys(columns) if name and name not in IMPORT_COLUMNS]
    return _Records(items=_csv_rows(reader, columns), ignored=lambda: ignored)


def _csv_rows(reader: Any, columns: list[str]) -> Iterable[tuple[int, dict[str, Any] | _BrokenRow]]:
    keep = [index for index, name in enumerate(columns) if name in IMPORT_COLUMNS]
    names = [columns[index] for index in keep]
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
        yield number, dict(zip(names, [cells[index] for index in keep], strict=True))


def _json_records(body: bytes) -> _Records:
    try:
        data = json.loads(body)  # a UTF-8 BOM is allowed
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise InvalidInput("the JSON body must be an array of clients")
    ignored: dict[str, None] = {}

    def items() -> Iterable[tuple[int, dict[str, Any] | _BrokenRow]]:
        for number, record in enumerate(data, start=1):
            if not isinstance(record, dict):
                yield (
                    number,
                    _BrokenRow("must be an object with phone, operator_code, tag, timezone"),
                )
                continue
            for key in record:
                if key not in IMPORT_COLUMNS:
                    ignored.setdefault(key)
            yield number, {key: value for key, value in record.items() if key in IMPORT_COLUMNS}

    return _Records(items=items(), ignored=lambda: list(ignored))


async def import_clients(
    session: AsyncSession,
    *,
    body: bytes,
    content_type: str,
    mode: ImportMode,
    default_timezone: str,
    clock: Clock,
    halt: Halt | None = None,
) -> ImportResult:
    """Upsert clients by phone from CSV or a JSON array. Bad records are reported, not written.

    An ``opted_out`` column (or key) opts clients out or back in, as the endpoints do; a record
    without one leaves the flag as it is, in either mode (a consent is not reset by a file that
    does not speak of it)."""
    records = _csv_records(body) if content_type == "text/csv" else _json_records(body)
    broken: list[ImportRejection] = []

    def _good(
        items: Iterable[tuple[int, dict[str, Any] | _BrokenRow]],
    ) -> Iterable[tuple[int, dict[str, Any]]]:
        for number, record in items:
            if isinstance(record, _BrokenRow):
                broken.append(ImportRejection(row=number, error=record.error))
            else:
                yield number, record

    parsed = _validate_all(_good(records.items), default_timezone=default_timezone, mode=mode)
    phones = [row.values["phone"] for row in parsed.rows]
    existing = await repository.existing_phones(session, phones)
    # One statement shape per set of columns: a CSV file has one, a JSON array a few at most.
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in parsed.rows:
        by_columns.setdefault(row.columns, []).append(row.values)
    now = clock()
    for columns, rows in by_columns.items():
        await repository.upsert_many(session, rows, now=now, columns=columns)
    if parsed.opt_in:
        await repository.set_opted_out(session, parsed.opt_in, at=None, now=now)
    opted_out = await repository.set_opted_out(session, parsed.opt_out, at=now, now=now)
    if opted_out:
        # All their messages at once, in the order every writer of messages keeps (db.locks).
        await messages.lock_of_clients(session, opted_out)
    for client_id in opted_out:
        await messages.cancel_unsent_of_client(session, client_id, reason=OPTED_OUT, now=now)
        await halt_after_commit(session, halt, "client", client_id)
    rejected = sorted(broken + parsed.rejected, key=lambda item: item.row)
    result = ImportResult(
        created=len(phones) - len(existing),
        updated=len(existing),
        rejected=rejected,
        mode=mode,
        ignored_columns=records.ignored(),
    )
    note(session, created=result.created, updated=result.updated, rejected=len(rejected))
    return result
