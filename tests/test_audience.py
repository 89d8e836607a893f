"""Who a mailing's filter selects: operator codes, tags, and "" for clients without a tag."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from notiflow.clients.repository import audience_condition
from notiflow.db.session import transaction
from notiflow.delivery.queue import scheduling
from notiflow.models import Client
from tests.conftest import FakeClock
from tests.helpers import make_client, make_mailing

pytestmark = pytest.mark.usefixtures("db_url")


async def _clients(api: httpx.AsyncClient) -> dict[str, int]:
    """Six clients: phone suffix → id."""
    made = [
        await make_client(api, "79000000001", tag="vip"),
        await make_client(api, "79000000002", tag="new"),
        await make_client(api, "79000000003"),
        await make_client(api, "79000000004", tag=""),
        await make_client(api, "79160000005", tag="vip"),
        await make_client(api, "79160000006"),
    ]
    return {client["phone"][-1]: client["id"] for client in made}


@pytest.mark.parametrize(
    ("operator_codes", "tags", "selected"),
    [
        ([], [], "123456"),
        ([], ["vip"], "15"),
        ([], [""], "346"),
        ([], ["", "vip"], "13456"),
        (["900"], ["", "vip"], "134"),
        (["916"], [""], "6"),
        (["916", "900"], ["new"], "2"),
        ([], ["nobody"], ""),
    ],
)
async def test_audience_condition(
    app: Any, api: httpx.AsyncClient, operator_codes: list[str], tags: list[str], selected: str
) -> None:
    ids = await _clients(api)
    async with transaction(app.state.sessionmaker) as session:
        rows = await session.scalars(
            select(Client.id).where(audience_condition(operator_codes, tags))
        )
        found = set(rows)
    assert found == {ids[suffix] for suffix in selected}


async def test_a_mailing_to_untagged_and_vip_clients(
    app: Any, api: httpx.AsyncClient, clock: FakeClock
) -> None:
    ids = await _clients(api)
    mailing = await make_mailing(
        api, clock.now, start_in=timedelta(0), filter={"tags": ["", "vip"]}
    )
    assert mailing["status"] == "running"
    assert mailing["filter"]["tags"] == ["", "vip"]
    async with transaction(app.state.sessionmaker) as session:
        assert await scheduling.materialise(session, mailing["id"], clock()) == 5
    page = (await api.get(f"/api/v1/mailings/{mailing['id']}/messages")).json()
    assert {message["client_id"] for message in page["items"]} == {
        ids[suffix] for suffix in "13456"
    }
