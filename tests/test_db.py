"""The database layer: engines and their options."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from notiflow.db.session import transaction
from notiflow.models import Client

PHONE = "79005550123"


async def test_errors_never_show_bound_parameters(app: Any) -> None:
    """A failing statement names its SQL, never its parameters (phones, texts)."""
    client = {"phone": PHONE, "operator_code": "900", "timezone": "UTC"}
    async with transaction(app.state.sessionmaker) as session:
        session.add(Client(**client))
    with pytest.raises(IntegrityError) as duplicate:
        async with transaction(app.state.sessionmaker) as session:
            session.add(Client(**client))
    with pytest.raises(DBAPIError) as failing:
        async with app.state.db_engine.connect() as connection:
            await connection.execute(
                text("SELECT id FROM no_such_table WHERE phone = :phone AND text = :text"),
                {"phone": PHONE, "text": "a secret text"},
            )
    for caught in (duplicate.value, failing.value):
        message = str(caught)
        assert "INSERT INTO clients" in message or "no_such_table" in message, message
        assert "parameters hidden" in message, message
        assert PHONE not in message, message
        assert "a secret text" not in message, message
