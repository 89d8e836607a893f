"""Settings: one object, read from ``NOTIFLOW_*`` environment variables and an optional ``.env``."""

from __future__ import annotations

import re
from datetime import time, timedelta
from functools import cached_property
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from notiflow.core.timezones import normalize_timezone
from notiflow.logging import LogFormat
from notiflow.reports.smtp_url import SmtpTarget, check_address, parse_smtp_url

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./notiflow.db"
_DATABASE_FORMS = (
    "use postgresql://user:password@host:5432/database or sqlite:///path/to/notiflow.db"
)
# The scheme of every accepted database URL, and the one it means: Notiflow talks to PostgreSQL
# through asyncpg and to SQLite through aiosqlite.
_DATABASE_SCHEMES = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "postgres+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}


class Settings(BaseSettings):
    """Every setting of Notiflow. Each field is documented in the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix="NOTIFLOW_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # Errors name the setting and what is wrong, never the value: URLs carry passwords.
        hide_input_in_errors=True,
    )

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description=(
            "An SQLite file (sqlite:///path, the default) or PostgreSQL "
            "(postgresql://user:password@host:5432/database); stored as the SQLAlchemy URL of "
            "the driver Notiflow uses: sqlite+aiosqlite:// or postgresql+asyncpg://."
        ),
    )
    database_pool_size: int = Field(
        default=10, ge=1, le=200, description="Connections kept open per process (PostgreSQL)."
    )
    api_tokens: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Comma-separated bearer tokens accepted by /api/v1 besides stored tokens, with the "
            "admin role; named config#1, config#2, … in the audit log."
        ),
    )
    api_send_tokens: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Like api_tokens, with the send role; named config-send#1, …",
    )
    api_read_tokens: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Like api_tokens, with the read role; named config-read#1, …",
    )
    default_timezone: str = Field(
        default="UTC", description="Time zone given to clients created without one."
    )
    request_max_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description=(
            "Largest request body any endpoint accepts (the import has its own limit, "
            "NOTIFLOW_IMPORT_MAX_BYTES). A Content-Length over it is refused with 413 before "
            "the body is read, whatever the token; a chunked body as soon as it grows past it."
        ),
    )
    import_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description=(
            "Largest body accepted by POST /api/v1/clients/import; larger is refused with 413, "
            "like NOTIFLOW_REQUEST_MAX_BYTES elsewhere."
        ),
    )
    log_level: str = Field(default="INFO", description="Log level: DEBUG, INFO, WARNING, ERROR.")
    log_format: LogFormat = Field(
        default=LogFormat.auto,
        description=(
            "How log lines are written on stderr: json (one JSON object per line), console "
            "(readable key=value), or auto: console on a terminal, json anywhere else."
        ),
    )

    # --- the provider -------------------------------------------------------------------------
    provider_url: str | None = Field(
        default=None,
        description="Base URL of the send API; the message id is appended. Unset: the sandbox.",
    )
    provider_token: str = Field(default="", description="Bearer token sent to the provider.")
    provider_timeout: float = Field(
        default=10.0, gt=0, le=300, description="Seconds one request to the provider may take."
    )

    # --- the delivery engine ------------------------------------------------------------------
    send_concurrency: int = Field(
        default=128, ge=1, le=10_000, description="Requests in flight to the provider at once."
    )
    send_rate: float = Field(
        default=0, ge=0, description="Most messages per second sent by one worker; 0: no limit."
    )
    send_max_attempts: int = Field(
        default=0, ge=0, description="Attempts before a message fails; 0: retry until end_time."
    )
    send_batch_size: int = Field(
        default=500, ge=1, le=5000, description="Messages claimed or written back per statement."
    )
    send_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long a claimed message stays with its worker before others reclaim it.",
    )
    retry_base_seconds: float = Field(
        default=1.0, gt=0, description="First retry delay; it doubles with each attempt."
    )
    retry_max_seconds: float = Field(default=300.0, gt=0, description="Longest retry delay.")
    auth_retry_seconds: float = Field(
        default=30.0,
        gt=0,
        description="After a 401/403 from the provider, seconds between probes with one message.",
    )
    breaker_failure_ratio: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of failed recent requests that opens the circuit breaker.",
    )
    breaker_window: int = Field(
        default=50, ge=1, description="Recent requests the circuit breaker looks at."
    )
    breaker_min_requests: int = Field(
        default=20, ge=1, description="Requests in the window before the breaker may open."
    )
    breaker_cooldown_seconds: float = Field(
        default=1.0, gt=0, description="First pause of an open breaker; doubles up to 30 s."
    )
    engine_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Longest sleep of the engine between looks at the database.",
    )
    auto_pause_failure_ratio: float = Field(
        default=0,
        ge=0,
        le=1,
        description="Pause a running mailing when the provider refused for good (a 4xx other "
        "than 401/403/408/429) this share of its last NOTIFLOW_AUTO_PAUSE_WINDOW answered "
        "attempts; 0: never.",
    )
    auto_pause_window: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="How many of a mailing's last attempts the auto-pause looks at.",
    )
    engine_stall_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A loop of the engine that completes no round for this long (blocked, or "
        "failing at every try) makes /health answer 503.",
    )
    worker_name: str = Field(
        default="", max_length=40, description="Name of this worker in logs and leases."
    )
    worker_heartbeat_seconds: float = Field(
        default=5.0,
        ge=0.1,
        le=20,
        description="Seconds between two heartbeats of an engine (its row in GET "
        "/api/v1/workers); a worker is alive while its last beat is under a minute old, so at "
        "most 20: three beats a minute at least.",
    )

    # --- metrics and health -------------------------------------------------------------------
    metrics_token: str = Field(
        default="",
        description="Bearer token that GET /metrics (of the API and of each worker) requires; "
        "empty: /metrics needs no token.",
    )
    session_secret: SecretStr | None = Field(
        default=None,
        min_length=32,
        description="Key that signs the admin UI's session cookie (at least 32 characters); "
        "unset: one is generated once, stored in the database and shared by every process.",
    )
    worker_port: int = Field(
        default=9100,
        ge=0,
        le=65535,
        description="Port on which each `notiflow worker` serves /metrics, /health, /health/live "
        "and /health/ready; 0: none.",
    )
    worker_host: str = Field(
        default="0.0.0.0",
        min_length=1,
        description="Address the worker's port listens on (0.0.0.0: every interface, so that "
        "Prometheus and an orchestrator reach it in a container).",
    )

    # --- sign-in to the admin UI through OpenID Connect ----------------------------------------
    oidc_issuer: str | None = Field(
        default=None,
        description="The OpenID Connect provider whose discovery document "
        "(<issuer>/.well-known/openid-configuration) the admin UI signs people in with; an "
        "https URL (http only on 127.0.0.1 or localhost). Unset: token sign-in only.",
    )
    oidc_client_id: str = Field(
        default="", max_length=500, description="This Notiflow's client id at the provider."
    )
    oidc_client_secret: SecretStr | None = Field(
        default=None, description="This Notiflow's client secret at the provider."
    )
    oidc_allowed_emails: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated email addresses that may sign in through the provider.",
    )
    oidc_allowed_domains: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated email domains (example.com) whose people may sign in.",
    )
    oidc_role: Literal["read", "send", "admin"] = Field(
        default="send", description="The role of everyone signed in through the provider."
    )
    oidc_scopes: str = Field(
        default="openid email profile",
        max_length=500,
        description="Scopes asked of the provider; openid and email are required.",
    )

    # --- webhooks -----------------------------------------------------------------------------
    webhook_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="Seconds one webhook delivery attempt may take."
    )
    webhook_max_attempts: int = Field(
        default=10, ge=1, le=100, description="Attempts of a webhook delivery before it fails."
    )
    webhook_retry_base_seconds: float = Field(
        default=10.0,
        gt=0,
        description="First retry delay of a webhook delivery; it doubles with each attempt.",
    )
    webhook_retry_max_seconds: float = Field(
        default=3600.0, gt=0, description="Longest retry delay of a webhook delivery."
    )
    webhook_concurrency: int = Field(
        default=16, ge=1, le=1000, description="Webhook deliveries in flight at once, per worker."
    )

    # --- the daily report -----------------------------------------------------------------------
    report_to: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated addresses the daily report is sent to; empty: no report.",
    )
    report_from: str = Field(
        default="",
        max_length=300,
        description="The From address of the daily report; required with NOTIFLOW_REPORT_TO.",
    )
    report_timezone: str = Field(
        default="UTC", description="Time zone of the report's day and of NOTIFLOW_REPORT_TIME."
    )
    report_time: time = Field(
        default=time(7, 0),
        description="When the report of the previous day is sent: HH:MM in the report time zone.",
    )
    report_max_late: timedelta = Field(
        default=timedelta(hours=6),
        gt=timedelta(0),
        le=timedelta(days=7),
        description="A report that could not be sent this long after NOTIFLOW_REPORT_TIME is "
        "skipped, with a warning: seconds, HH:MM:SS or an ISO 8601 duration (PT6H).",
    )
    smtp_url: SecretStr | None = Field(
        default=None,
        description="The SMTP server of the daily report: smtp://[user:password@]host[:port] "
        "(STARTTLS when credentials are given or ?starttls=yes), smtps://… (implicit TLS).",
    )
    smtp_timeout: float = Field(
        default=30.0,
        gt=0,
        le=120,
        description="Seconds one SMTP operation (connecting, each command) may take.",
    )

    @field_validator("api_tokens", "api_send_tokens", "api_read_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return [token.strip() for token in value.split(",") if token.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _normalize_database_url(cls, value: str) -> str:
        scheme, separator, rest = value.strip().partition("://")
        normalized = _DATABASE_SCHEMES.get(scheme.lower())
        if normalized is None:
            backend, _, driver = scheme.lower().partition("+")
            if not separator:
                raise ValueError(f"not a database URL: {_DATABASE_FORMS}")
            if backend in ("postgresql", "postgres", "sqlite"):
                raise ValueError(
                    f"the driver {driver!r} is not supported (Notiflow uses asyncpg for "
                    f"PostgreSQL and aiosqlite for SQLite): {_DATABASE_FORMS}"
                )
            raise ValueError(f"{scheme}:// databases are not supported: {_DATABASE_FORMS}")
        url = f"{normalized}://{rest}"
        try:
            make_url(url)
        except (ArgumentError, ValueError):  # e.g. a port that is not a number
            raise ValueError(f"not a valid database URL: {_DATABASE_FORMS}") from None
        return url

    @field_validator("report_to", mode="before")
    @classmethod
    def _split_addresses(cls, value: object) -> object:
        if isinstance(value, str):
            return [address.strip() for address in value.split(",") if address.strip()]
        return value

    @field_validator("report_to")
    @classmethod
    def _check_recipients(cls, value: list[str]) -> list[str]:
        return [check_address(address) for address in value]

    @field_validator("report_from")
    @classmethod
    def _check_sender(cls, value: str) -> str:
        return check_address(value) if value.strip() else ""

    @field_validator("report_time", mode="before")
    @classmethod
    def _parse_report_time(cls, value: object) -> object:
        if isinstance(value, str):
            match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)
            if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
                raise ValueError("must be a time of day as HH:MM, from 00:00 to 23:59")
            return time(int(match.group(1)), int(match.group(2)))
        return value

    @field_validator("report_max_late", mode="before")
    @classmethod
    def _seconds_as_duration(cls, value: object) -> object:
        if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
            return float(value)
        return value

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        parse_smtp_url(value.get_secret_value())  # raises ValueError, never with the password
        return SecretStr(value.get_secret_value().strip())

    @field_validator("default_timezone", "report_timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        return normalize_timezone(value)

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_log_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _lease_outlives_a_request(self) -> Settings:
        if self.send_lease_seconds < 2 * self.provider_timeout:
            raise ValueError(
                "send_lease_seconds must be at least twice provider_timeout: a message is sent "
                "only while its worker surely holds its lease until the request's timeout"
            )
        return self

    @model_validator(mode="after")
    def _report_needs_a_server(self) -> Settings:
        if self.report_to and self.smtp_url is None:
            raise ValueError("NOTIFLOW_REPORT_TO is set: NOTIFLOW_SMTP_URL must be set too")
        if self.report_to and not self.report_from:
            raise ValueError("NOTIFLOW_REPORT_TO is set: NOTIFLOW_REPORT_FROM must be set too")
        return self

    @field_validator("oidc_issuer")
    @classmethod
    def _check_issuer(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        try:
            parts = urlsplit(value)
        except ValueError:
            raise ValueError("not a URL: use https://login.example.com/realms/notiflow") from None
        local = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if not parts.hostname or parts.query or parts.fragment:
            raise ValueError("not an issuer URL: use https://login.example.com/realms/notiflow")
        if parts.scheme != "https" and not (parts.scheme == "http" and local):
            raise ValueError(
                "must be an https:// URL (http:// only on 127.0.0.1 or localhost, for testing)"
            )
        return value

    @field_validator("oidc_client_id", "oidc_scopes")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("oidc_client_secret")
    @classmethod
    def _blank_secret_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        return value

    @field_validator("oidc_allowed_emails", "oidc_allowed_domains", mode="before")
    @classmethod
    def _split_lowercase(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list):
            return [str(item).strip().lower() for item in value if str(item).strip()]
        return value

    @field_validator("oidc_allowed_emails")
    @classmethod
    def _check_allowed_emails(cls, value: list[str]) -> list[str]:
        for email in value:
            local, at, domain = email.rpartition("@")
            if not at or not local or not domain or " " in email:
                raise ValueError(f"{email!r} is not an email address")
        return value

    @field_validator("oidc_allowed_domains")
    @classmethod
    def _check_allowed_domains(cls, value: list[str]) -> list[str]:
        domains = [domain.removeprefix("@") for domain in value]
        for domain in domains:
            if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", domain):
                raise ValueError(f"{domain!r} is not a domain name like example.com")
        return domains

    @field_validator("oidc_role", mode="before")
    @classmethod
    def _lower_role(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _oidc_is_whole(self) -> Settings:
        if self.oidc_issuer is None:
            if self.oidc_client_id or self.oidc_client_secret is not None:
                raise ValueError(
                    "NOTIFLOW_OIDC_CLIENT_ID or NOTIFLOW_OIDC_CLIENT_SECRET is set: "
                    "NOTIFLOW_OIDC_ISSUER must be set too"
                )
            return self
        if not self.oidc_client_id or self.oidc_client_secret is None:
            raise ValueError(
                "NOTIFLOW_OIDC_ISSUER is set: NOTIFLOW_OIDC_CLIENT_ID and "
                "NOTIFLOW_OIDC_CLIENT_SECRET must be set too"
            )
        if not self.oidc_allowed_emails and not self.oidc_allowed_domains:
            raise ValueError(
                "NOTIFLOW_OIDC_ISSUER is set but nobody may sign in: set "
                "NOTIFLOW_OIDC_ALLOWED_EMAILS and/or NOTIFLOW_OIDC_ALLOWED_DOMAINS"
            )
        scopes = self.oidc_scopes.split()
        if "openid" not in scopes or "email" not in scopes:
            raise ValueError("NOTIFLOW_OIDC_SCOPES must include openid and email")
        return self

    @property
    def smtp(self) -> SmtpTarget | None:
        """The SMTP server of the daily report, parsed (None when NOTIFLOW_SMTP_URL is unset)."""
        if self.smtp_url is None:
            return None
        return parse_smtp_url(self.smtp_url.get_secret_value())

    @cached_property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
