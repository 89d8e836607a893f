"""The mailing form: HTML fields in, the API's body out, and the API's errors back next to the
fields they are about. Validation is the API's own (``MailingCreate`` and the service)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from notiflow.core.errors import AppError, validation_body
from notiflow.mailings.schemas import MailingFilter, MailingReplace, SendWindow
from notiflow.models import Mailing

FIELDS = ("text", "start_time", "end_time", "operator_codes", "tags", "window_start", "window_end")

# Where an error of the API's body shows in the form.
_FIELD_OF = {
    "filter.operator_codes": "operator_codes",
    "filter.tags": "tags",
    "filter": "operator_codes",
    "send_window.start": "window_start",
    "send_window.end": "window_end",
    "send_window": "window_start",
}


class Audience(BaseModel):
    """The part of a mailing's body its audience depends on, in the API's own schemas."""

    model_config = ConfigDict(extra="forbid")

    filter: MailingFilter
    send_window: SendWindow | None


@dataclass
class MailingForm:
    values: dict[str, str]
    errors: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, form: Mapping[str, Any]) -> MailingForm:
        return cls({name: str(form.get(name) or "").strip() for name in FIELDS})

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
            "start_time": v["start_time"] or None,
            "end_time": v["end_time"] or None,
            "filter": {"operator_codes": _list(v["operator_codes"]), "tags": _list(v["tags"])},
            "send_window": None,
        }
        if v["window_start"] or v["window_end"]:
            body["send_window"] = {
                "start": v["window_start"] or None,
                "end": v["window_end"] or None,
            }
        return body

    def validate(self) -> MailingReplace | None:
        """The API's schema of a mailing, or None with the errors set."""
        try:
            return MailingReplace.model_validate(self.body())
        except ValidationError as exc:
            for error in validation_body(exc.errors()).errors:
                self.add(error.field, error.message)
            return None

    def audience(self) -> Audience | None:
        """The filter and send window of these fields, checked by the API's schemas (as POST
        /api/v1/mailings/preview does), or None with the errors set."""
        body = self.body()
        try:
            return Audience.model_validate(
                {"filter": body["filter"], "send_window": body["send_window"]}
            )
        except ValidationError as exc:
            for error in validation_body(exc.errors()).errors:
                self.add(error.field, error.message)
            return None

    def refused(self, exc: AppError) -> None:
        """An error of the service: next to its field when it names one."""
        self.add(exc.field or "", exc.detail)

    def add(self, api_field: str, message: str) -> None:
        name = api_field if api_field in FIELDS else ""
        for prefix, form_field in _FIELD_OF.items():
            if api_field == prefix or api_field.startswith(prefix + "."):
                name = form_field
                break
        self.errors.setdefault(name, []).append(message)


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
