"""The UI's forms: HTML fields in, the API's body out, and the API's errors back next to the
fields they are about. Validation is the API's own: each form names the API's schema, and the
service's refusals (``AppError`` with a field) land next to their field too.

``SchemaForm`` is the shared part; a form says which fields it has, how they make the API's body
(``body``), which schema checks it (``schema``) and where an error of a nested body field shows
(``FIELD_OF``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from notiflow.clients.schemas import ClientCreate
from notiflow.core.errors import AppError, validation_body
from notiflow.mailings.schemas import MailingFilter, MailingReplace, SendWindow
from notiflow.models import Client, Mailing

SchemaT = TypeVar("SchemaT", bound=BaseModel)
ModelT = TypeVar("ModelT", bound=BaseModel)


class Audience(BaseModel):
    """The part of a mailing's body its audience depends on, in the API's own schemas."""

    model_config = ConfigDict(extra="forbid")

    filter: MailingFilter
    send_window: SendWindow | None


@dataclass
class SchemaForm(Generic[SchemaT]):
    """A form's values as typed (strings) and its errors by field ("" for the whole form)."""

    values: dict[str, str]
    errors: dict[str, list[str]] = field(default_factory=dict)

    FIELDS: ClassVar[tuple[str, ...]] = ()
    # Where an error of the API's body shows in the form, by the body's dotted path (a prefix
    # matches its sub-fields too); a field of the same name needs no entry.
    FIELD_OF: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def parse(cls, form: Mapping[str, Any]) -> Self:
        return cls({name: str(form.get(name) or "").strip() for name in cls.FIELDS})

    @classmethod
    def schema(cls) -> type[SchemaT]:
        """The API's schema of the body."""
        raise NotImplementedError

    def body(self) -> dict[str, Any]:
        """The API's JSON body for these fields."""
        raise NotImplementedError

    def validate(self) -> SchemaT | None:
        """The body checked by the API's schema, or None with the errors set."""
        return self.check(self.schema(), self.body())

    def check(self, schema: type[ModelT], body: dict[str, Any]) -> ModelT | None:
        """``body`` checked by ``schema``, or None with its errors set next to their fields."""
        try:
            return schema.model_validate(body)
        except ValidationError as exc:
            for error in validation_body(exc.errors()).errors:
                self.add(error.field, error.message)
            return None

    def refused(self, exc: AppError) -> None:
        """An error of the service: next to its field when it names one."""
        self.add(exc.field or "", exc.detail)

    def add(self, api_field: str, message: str) -> None:
        name = api_field if api_field in self.FIELDS else ""
        for prefix, form_field in self.FIELD_OF.items():
            if api_field == prefix or api_field.startswith(prefix + "."):
                name = form_field
                break
        self.errors.setdefault(name, []).append(message)


class MailingForm(SchemaForm[MailingReplace]):
    FIELDS = (
        "text",
        "start_time",
        "end_time",
        "operator_codes",
        "tags",
        "window_start",
        "window_end",
    )
    FIELD_OF = {
        "filter.operator_codes": "operator_codes",
        "filter.tags": "tags",
        "filter": "operator_codes",
        "send_window.start": "window_start",
        "send_window.end": "window_end",
        "send_window": "window_start",
    }

    @classmethod
    def schema(cls) -> type[MailingReplace]:
        return MailingReplace

    @classmethod
    def of(cls, mailing: Mailing) -> MailingForm:
        def clock(value: Any) -> str:
            return "" if value is None else value.strftime("%H:%M")

        return cls(
            {
                "text": mailing.text,
                "start_time": mailing.start_time.replace(tzinfo=None).isoformat(),
                "end_time": mailing.end_time.replace(tzinfo=None).isoformat(),
                "operator_codes": ", ".join(mailing.operator_codes),
                "tags": ", ".join(mailing.tags),
                "window_start": clock(mailing.window_start),
                "window_end": clock(mailing.window_end),
            }
        )

    @classmethod
    def cloned(cls, mailing: Mailing, *, now: datetime) -> MailingForm:
        """A new mailing like ``mailing``: its text, filter and send window, starting at the
        next whole minute after ``now`` and lasting as long as ``mailing`` did."""
        form = cls.of(mailing)
        start = now.replace(second=0, microsecond=0, tzinfo=None) + timedelta(minutes=1)
        end = start + (mailing.end_time - mailing.start_time)
        form.values["start_time"] = start.isoformat()
        form.values["end_time"] = end.isoformat()
        return form

    def body(self) -> dict[str, Any]:
        """The API's JSON body for these fields (times without an offset are UTC)."""
        v = self.values
        body: dict[str, Any] = {
            "text": v["text"],
            **_given(start_time=v["start_time"], end_time=v["end_time"]),
            "filter": {"operator_codes": _list(v["operator_codes"]), "tags": _list(v["tags"])},
            "send_window": None,
        }
        if v["window_start"] or v["window_end"]:
            body["send_window"] = _given(start=v["window_start"], end=v["window_end"])
        return body

    def audience(self) -> Audience | None:
        """The filter and send window of these fields, checked by the API's schemas (as POST
        /api/v1/mailings/preview does), or None with the errors set."""
        body = self.body()
        return self.check(Audience, {"filter": body["filter"], "send_window": body["send_window"]})


class ClientForm(SchemaForm[ClientCreate]):
    """A client, as POST /api/v1/clients (create) and PUT /api/v1/clients/{id} (edit) take it:
    an empty operator code or time zone takes the API's default, an empty tag is no tag."""

    FIELDS = ("phone", "operator_code", "tag", "timezone")

    @classmethod
    def schema(cls) -> type[ClientCreate]:
        return ClientCreate  # ClientReplace is the same body

    @classmethod
    def of(cls, client: Client) -> ClientForm:
        return cls(
            {
                "phone": client.phone,
                "operator_code": client.operator_code,
                "tag": client.tag or "",
                "timezone": client.timezone,
            }
        )

    def body(self) -> dict[str, Any]:
        v = self.values
        body: dict[str, Any] = {
            "operator_code": v["operator_code"] or None,
            "tag": v["tag"] or None,
            "timezone": v["timezone"] or None,
        }
        if v["phone"]:  # an empty one is missing: "required", as the API says
            body["phone"] = v["phone"]
        return body


def _given(**fields: str) -> dict[str, str]:
    """The fields filled in: an empty one is missing from the body, "required" as the API says."""
    return {name: value for name, value in fields.items() if value}


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def duration_text(delta: timedelta) -> str:
    """``timedelta(days=1, hours=2, minutes=30)`` → ``1 d 2 h 30 min`` (whole minutes)."""
    minutes = max(int(delta.total_seconds()) // 60, 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [
        f"{days} d" if days else "",
        f"{hours} h" if hours else "",
        f"{minutes} min" if minutes else "",
    ]
    return " ".join(part for part in parts if part) or "under a minute"
