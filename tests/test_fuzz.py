"""Property-based fuzzing of the whole API from its OpenAPI document (schemathesis).

Whatever the generated input, the service answers with a documented status and a body that fits
the documented schema; never a 5xx. Each operation is one test, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from notiflow.app import create_app
from notiflow.config import Settings
from notiflow.db.engine import create_engine
from tests.conftest import TOKEN

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def _load(app: Any) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _labels() -> list[str]:
    app = create_app(Settings(_env_file=None))
    return [result.ok().label for result in _load(app).get_all_operations()]


@pytest.mark.parametrize("label", _labels())
def test_api_never_fails(db_url: str, label: str) -> None:
    app_settings = Settings(database_url=db_url, api_tokens=[TOKEN], _env_file=None)
    # Each call runs on a fresh event loop, so connections must not outlive a request.
    app = create_app(app_settings, engine=create_engine(app_settings, pooled=False))
    operations = {result.ok().label: result.ok() for result in _load(app).get_all_operations()}
    operation = operations[label]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)

    run()
