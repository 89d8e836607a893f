"""Settings: one object, read from ``NOTIFLOW_*`` environment variables and an optional ``.env``."""

from __future__ import annotations

from functools import cached_property
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from notiflow.core.timezones import normalize_timezone

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./notiflow.db"


class Settings(BaseSettings):
    """Every setting of Notiflow. Each field is documented in the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix="NOTIFLOW_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL: an SQLite file (default) or postgresql+asyncpg://…",
    )
    database_pool_size: int = Field(
        default=10, ge=1, le=200, description="Connections kept open per process (PostgreSQL)."
    )
    api_tokens: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated bearer tokens accepted by /api/v1 besides stored tokens.",
    )
    default_timezone: str = Field(
        default="UTC", description="Time zone given to clients created without one."
    )
    import_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Largest body accepted by POST /api/v1/clients/import.",
    )
    log_level: str = Field(default="INFO", description="Log level: DEBUG, INFO, WARNING, ERROR.")

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return [token.strip() for token in value.split(",") if token.strip()]
        return value

    @field_validator("default_timezone")
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

    @cached_property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
