"""Domain errors and their HTTP form.

Services raise these; ``install_error_handlers`` turns them, and FastAPI's own validation
errors, into one JSON shape:
``{"detail": "<one sentence>", "errors": [{"field", "message", "type"}]}``.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("notiflow.api")


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending field; empty for the whole body.")
    message: str = Field(description="What is wrong with it.")
    type: str = Field(description="A stable, machine-readable error code.")


class ErrorBody(BaseModel):
    """The body of every 4xx answer."""

    detail: str = Field(description="One sentence that says what went wrong.")
    errors: list[FieldError] = Field(
        default_factory=list, description="Per-field problems, when the input was at fault."
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "detail": "phone: must be 11 digits starting with 7 (7XXXXXXXXXX)",
                    "errors": [
                        {
                            "field": "phone",
                            "message": "must be 11 digits starting with 7 (7XXXXXXXXXX)",
                            "type": "value_error",
                        }
                    ],
                }
            ]
        }
    }


class AppError(Exception):
    """An error whose HTTP status and message are meant for the API user."""

    status_code = status.HTTP_400_BAD_REQUEST
    error_type = "bad_request"
    headers: dict[str, str] | None = None

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field

    def body(self) -> ErrorBody:
        errors = []
        if self.field is not None:
            errors.append(FieldError(field=self.field, message=self.detail, type=self.error_type))
        detail = f"{self.field}: {self.detail}" if self.field else self.detail
        return ErrorBody(detail=detail, errors=errors)


class Forbidden(AppError):
    status_code = status.HTTP_403_FORBIDDEN
    error_type = "forbidden"


class NotFound(AppError):
    status_code = status.HTTP_404_NOT_FOUND
    error_type = "not_found"


class Conflict(AppError):
    status_code = status.HTTP_409_CONFLICT
    error_type = "conflict"


class InvalidInput(AppError):
    status_code = status.HTTP_422_UNPROCESSABLE_CONTENT
    error_type = "value_error"


class UnsupportedMediaType(AppError):
    status_code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    error_type = "unsupported_media_type"


class PayloadTooLarge(AppError):
    status_code = status.HTTP_413_CONTENT_TOO_LARGE
    error_type = "too_large"


class ServiceUnavailable(AppError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    error_type = "unavailable"


def _field_path(loc: Sequence[Any]) -> str:
    parts = [str(part) for part in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        # Keep the location for query/path parameters; the body is implied.
        parts = parts[1:] if parts[0] == "body" else parts
    return ".".join(parts)


def _clean_message(message: str) -> str:
    # Pydantic prefixes errors raised by validators with "Value error, ".
    return message.removeprefix("Value error, ")


def _length_message(error: Mapping[str, Any], kind: str) -> str | None:
    """Pydantic's length errors in the API's words: characters for text, items for lists."""
    ctx = error.get("ctx") or {}
    too_short = kind in ("string_too_short", "too_short")
    bound = ctx.get("min_length" if too_short else "max_length")
    if bound is None:
        return None
    if too_short and bound == 1:
        return "must not be empty"
    limit = "at least" if too_short else "at most"
    if isinstance(error.get("input"), str):
        return f"must be {limit} {bound} characters"
    return f"must have {limit} {bound} items"


_OBJECT_EXPECTED = frozenset({"model_attributes_type", "model_type", "dict_type"})


def _message(error: Mapping[str, Any], kind: str, field: str) -> str:
    if kind == "missing":
        return "required" if field else "a JSON body is required"
    if kind in _OBJECT_EXPECTED:
        return "must be a JSON object" if field else "the body must be a JSON object"
    if kind in ("string_too_short", "too_short", "string_too_long", "too_long"):
        worded = _length_message(error, kind)
        if worded is not None:
            return worded
    return _clean_message(str(error.get("msg", "invalid")))


def _field_error(error: Mapping[str, Any]) -> FieldError:
    kind = str(error.get("type", "value_error"))
    loc = error.get("loc", ())
    if kind == "json_invalid":
        position = loc[-1] if loc else "?"
        reason = (error.get("ctx") or {}).get("error", "")
        return FieldError(
            field="",
            message=f"the body is not valid JSON (at character {position}): {reason}".rstrip(": "),
            type=kind,
        )
    field = _field_path(loc)
    return FieldError(field=field, message=_message(error, kind, field), type=kind)


def validation_body(errors: Sequence[Any]) -> ErrorBody:
    field_errors = [_field_error(error) for error in errors]
    summary = "; ".join(
        f"{e.field}: {e.message}" if e.field else e.message for e in field_errors[:5]
    )
    if len(field_errors) > 5:
        summary += f"; and {len(field_errors) - 5} more"
    return ErrorBody(detail=summary or "invalid input", errors=field_errors)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError) -> JSONResponse:
        return JSONResponse(
            exc.body().model_dump(), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        body = validation_body(exc.errors())
        return JSONResponse(body.model_dump(), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = ErrorBody(detail=str(exc.detail))
        return JSONResponse(body.model_dump(), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(ConnectionError)  # the driver could not connect at all
    @app.exception_handler(socket.gaierror)
    @app.exception_handler(TimeoutError)
    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "database unavailable",
            extra={"method": request.method, "path": request.url.path, "error": str(exc)},
        )
        body = ErrorBody(detail="the database is unavailable right now; try again shortly")
        return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"method": request.method, "path": request.url.path})
        body = ErrorBody(detail="internal error; the server log has the details")
        return JSONResponse(body.model_dump(), status_code=500)


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the error codes an endpoint can answer."""
    descriptions = {
        401: "Missing or wrong bearer token.",
        403: "The token's role does not allow this; the answer names the role it needs.",
        404: "No such id.",
        409: "Conflict with the current state.",
        413: "Body over its size limit; the answer names the limit and the setting to raise.",
        415: "Unsupported content type.",
        422: "Invalid input; `errors` names each field and what is wrong.",
        503: "A part it needs is unavailable (the database, or the provider); try again.",
    }
    return {code: {"model": ErrorBody, "description": descriptions[code]} for code in codes}
