"""Settings: values are normalised or refused with a message naming what to write instead."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from notiflow.config import Settings


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("postgresql://u:p@db:5432/notiflow", "postgresql+asyncpg://u:p@db:5432/notiflow"),
        ("postgres://u@db/notiflow?ssl=require", "postgresql+asyncpg://u@db/notiflow?ssl=require"),
        ("postgresql+asyncpg://u@db/notiflow", "postgresql+asyncpg://u@db/notiflow"),
        ("sqlite:///./notiflow.db", "sqlite+aiosqlite:///./notiflow.db"),
        ("sqlite:////var/lib/notiflow.db", "sqlite+aiosqlite:////var/lib/notiflow.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_database_url_means_the_drivers_notiflow_uses(given: str, stored: str) -> None:
    settings = Settings(database_url=given, _env_file=None)
    assert settings.database_url == stored
    assert settings.is_sqlite == stored.startswith("sqlite")


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("postgresql+psycopg2://u@db/notiflow", "the driver 'psycopg2' is not supported"),
        ("mysql://u@db/notiflow", "mysql:// databases are not supported"),
        ("foo://", "foo:// databases are not supported"),
        ("./notiflow.db", "not a database URL"),
        ("postgresql://u@db:port/notiflow", "not a valid database URL"),
    ],
)
def test_unsupported_database_url_is_refused(given: str, says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(database_url=given, _env_file=None)
    message = caught.value.errors()[0]["msg"]
    assert says in message
    assert "use postgresql://user:password@host:5432/database or sqlite:///" in message
