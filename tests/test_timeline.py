"""Messages per minute (the charts' data): the service on real rows at known minutes, the API
endpoints and the UI's JSON routes, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from notiflow.core.errors import InvalidInput
from notiflow.db.session import transaction
from notiflow.messages.repository import NewMessage
from notiflow.models import MessageStatus
from notiflow.stats import service
from tests.conftest import FakeClock
from tests.helpers import iso, make_mailing, seed_messages
from tests.test_admin_ui import BASE, Html, make_token, sign_in

pytestmark = pytest.mark.usefixtures("db_url")

MINUTE = timedelta(minutes=1)


class Seeder:
    """Messages of a mailing that reached an outcome at given times, through the same write
    path as the engine's (the per-minute counters are kept with them)."""

    def __init__(self, app: Any, api: httpx.AsyncClient) -> None:
        self.app = app
        self.api = api
        self.clients: list[int] = []

    async def _client_ids(self, count: int) -> list[int]:
        while len(self.clients) < count:
            n = len(self.clients)
            response = await self.api.post("/api/v1/clients", json={"phone": f"7900{n:07d}"})
            assert response.status_code == 201, response.text
            self.clients.append(response.json()["id"])
        return self.clients[:count]

    async def sent(self, mailing_id: int, *times: datetime) -> None:
        """One message sent at each of ``times``."""
        used = await self._used(mailing_id)
        ids = (await self._client_ids(used + len(times)))[used:]
        rows = [
            NewMessage(client_id=client, status=MessageStatus.sent, attempts=1, sent_at=at)
            for client, at in zip(ids, times, strict=True)
        ]
        await seed_messages(self.app, mailing_id, rows, now=times[0])

    async def failed(self, mailing_id: int, at: datetime, count: int = 1) -> None:
        """``count`` messages that failed for good at ``at``."""
        used = await self._used(mailing_id)
        ids = (await self._client_ids(used + count))[used:]
        rows = [
            NewMessage(client_id=c, status=MessageStatus.failed, attempts=1, last_error="HTTP 400")
            for c in ids
        ]
        await seed_messages(self.app, mailing_id, rows, now=at)

    async def _used(self, mailing_id: int) -> int:
        body = (await self.api.get(f"/api/v1/mailings/{mailing_id}")).json()
        return int(body["stats"]["total"])


@pytest.fixture
async def ui(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client: cookies, no bearer token."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


@pytest.fixture
def seeder(app: Any, api: httpx.AsyncClient) -> Seeder:
    return Seeder(app, api)


def minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def nonzero(body: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {p["at"]: (p["sent"], p["failed"]) for p in body["points"] if p["sent"] or p["failed"]}


async def test_the_last_hours_of_every_mailing_minute_by_minute(
    api: httpx.AsyncClient, seeder: Seeder, clock: FakeClock
) -> None:
    now = clock.now
    last = minute(now)
    first = last - 359 * MINUTE  # six hours, the current minute included
    a = (await make_mailing(api, now, start_in=timedelta(0)))["id"]
    b = (await make_mailing(api, now, start_in=timedelta(0)))["id"]
    # Two seconds of one minute fall in that minute; two mailings add up.
    await seeder.sent(
        a, last - 10 * MINUTE + timedelta(seconds=1), last - 10 * MINUTE + timedelta(seconds=59)
    )
    await seeder.sent(b, last - 10 * MINUTE + timedelta(seconds=30))
    await seeder.failed(a, last - 3 * MINUTE + timedelta(seconds=12), count=2)
    await seeder.sent(b, now)  # the current minute counts
    await seeder.sent(a, first)  # the first minute of the range is in it …
    await seeder.sent(b, first - timedelta(seconds=1))  # … the one before is not

    response = await api.get("/api/v1/stats/timeline")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mailing_id"] is None
    assert body["status"] is None
    assert body["start"] == iso(first)
    assert body["end"] == iso(last)
    # Every minute is there, in order, the quiet ones as zeros.
    assert [p["at"] for p in body["points"]] == [iso(first + n * MINUTE) for n in range(360)]
    assert nonzero(body) == {
        iso(first): (1, 0),
        iso(last - 10 * MINUTE): (3, 0),
        iso(last - 3 * MINUTE): (0, 2),
        iso(last): (1, 0),
    }
    assert (body["sent"], body["failed"]) == (5, 2)

    one_hour = (await api.get("/api/v1/stats/timeline", params={"hours": 1})).json()
    assert len(one_hour["points"]) == 60
    assert one_hour["start"] == iso(last - 59 * MINUTE)
    assert (one_hour["sent"], one_hour["failed"]) == (4, 2)

    longest = (await api.get("/api/v1/stats/timeline", params={"hours": 48})).json()
    assert len(longest["points"]) == service.MAX_MINUTES
    assert (longest["sent"], longest["failed"]) == (6, 2)


async def test_nothing_sent_is_all_zeros(api: httpx.AsyncClient, clock: FakeClock) -> None:
    body = (await api.get("/api/v1/stats/timeline", params={"hours": 2})).json()
    assert len(body["points"]) == 120
    assert nonzero(body) == {}
    assert (body["sent"], body["failed"]) == (0, 0)
    assert body["end"] == iso(minute(clock.now))


@pytest.mark.parametrize("hours", ["0", "-1", "49", "1000", "six", "1.5", ""])
async def test_a_bad_range_is_refused(api: httpx.AsyncClient, hours: str) -> None:
    response = await api.get("/api/v1/stats/timeline", params={"hours": hours})
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["query.hours"]


async def test_the_service_refuses_a_bad_range(app: Any, clock: FakeClock) -> None:
    now = minute(clock.now)
    async with transaction(app.state.sessionmaker) as session:
        with pytest.raises(InvalidInput, match="at most 48 hours"):
            await service.per_minute(session, first=now - service.MAX_MINUTES * MINUTE, last=now)
        with pytest.raises(InvalidInput, match="ends before it starts"):
            await service.per_minute(session, first=now, last=now - MINUTE)
        for hours in (0, service.MAX_HOURS + 1):
            with pytest.raises(InvalidInput) as refused:
                await service.recent_timeline(session, now=now, hours=hours)
            assert refused.value.field == "hours"
        # The longest range there is, and the shortest: one minute; seconds do not matter.
        longest = await service.per_minute(
            session, first=now - (service.MAX_MINUTES - 1) * MINUTE, last=now
        )
        assert len(longest.points) == service.MAX_MINUTES
        one = await service.per_minute(
            session, first=now + timedelta(seconds=59), last=now + timedelta(seconds=1)
        )
        assert [p.at for p in one.points] == [now]


async def test_a_mailing_from_its_first_outcome_to_now_then_to_its_end(
    api: httpx.AsyncClient, seeder: Seeder, clock: FakeClock
) -> None:
    now = clock.now
    mailing = (await make_mailing(api, now, start_in=timedelta(0)))["id"]
    other = (await make_mailing(api, now, start_in=timedelta(0)))["id"]
    url = f"/api/v1/mailings/{mailing}/timeline"

    nothing = (await api.get(url)).json()
    assert nothing == {
        "mailing_id": mailing,
        "status": "running",
        "start": None,
        "end": None,
        "points": [],
        "sent": 0,
        "failed": 0,
    }

    started = minute(now) - 30 * MINUTE
    await seeder.sent(mailing, started + timedelta(seconds=40), started + 5 * MINUTE)
    await seeder.failed(mailing, started + 5 * MINUTE + timedelta(seconds=3))
    await seeder.sent(mailing, started + 20 * MINUTE)
    await seeder.sent(other, started - 2 * MINUTE, started + 5 * MINUTE)  # not this mailing's

    running = (await api.get(url)).json()
    assert running["status"] == "running"
    assert running["start"] == iso(started)
    assert running["end"] == iso(minute(now))  # a running mailing's chart runs to now
    assert len(running["points"]) == 31
    assert nonzero(running) == {
        iso(started): (1, 0),
        iso(started + 5 * MINUTE): (1, 1),
        iso(started + 20 * MINUTE): (1, 0),
    }
    assert (running["sent"], running["failed"]) == (3, 1)

    # Once it ends, its chart ends with its last outcome, however late one looks at it.
    assert (await api.post(f"/api/v1/mailings/{mailing}/cancel")).status_code == 200
    clock.advance(hours=3)
    ended = (await api.get(url)).json()
    assert ended["status"] == "cancelled"
    assert ended["start"] == iso(started)
    assert ended["end"] == iso(started + 20 * MINUTE)
    assert len(ended["points"]) == 21
    assert nonzero(ended) == nonzero(running)

    missing = await api.get("/api/v1/mailings/999999/timeline")
    assert missing.status_code == 404
    assert (await api.get("/api/v1/mailings/0/timeline")).status_code == 422


async def test_a_long_mailing_shows_its_last_48_hours(
    api: httpx.AsyncClient, seeder: Seeder, clock: FakeClock
) -> None:
    now = clock.now
    mailing = (await make_mailing(api, now, start_in=timedelta(0)))["id"]
    await seeder.sent(mailing, now - timedelta(hours=50), now - timedelta(hours=47))
    body = (await api.get(f"/api/v1/mailings/{mailing}/timeline")).json()
    assert len(body["points"]) == service.MAX_MINUTES
    assert body["end"] == iso(minute(now))
    assert body["start"] == iso(minute(now) - (service.MAX_MINUTES - 1) * MINUTE)
    assert nonzero(body) == {iso(minute(now - timedelta(hours=47))): (1, 0)}


async def test_a_read_token_may_read_them_and_no_token_may_not(
    api: httpx.AsyncClient, clock: FakeClock
) -> None:
    mailing = (await make_mailing(api, clock.now, start_in=timedelta(0)))["id"]
    read = {"Authorization": f"Bearer {await make_token(api, 'read')}"}
    for url in ("/api/v1/stats/timeline", f"/api/v1/mailings/{mailing}/timeline"):
        assert (await api.get(url, headers=read)).status_code == 200
        assert (await api.get(url, headers={"Authorization": ""})).status_code == 401


async def test_the_uis_json_routes_answer_what_the_api_does(
    api: httpx.AsyncClient, ui: httpx.AsyncClient, seeder: Seeder, clock: FakeClock
) -> None:
    mailing = (await make_mailing(api, clock.now, start_in=timedelta(0)))["id"]
    await seeder.sent(mailing, clock.now - 2 * MINUTE, clock.now)
    routes = {
        "/ui/charts/timeline.json?hours=3": "/api/v1/stats/timeline?hours=3",
        f"/ui/mailings/{mailing}/timeline.json": f"/api/v1/mailings/{mailing}/timeline",
    }
    # No session: a JSON 401 for the page's script, not a redirect to the sign-in page.
    for route in routes:
        refused = await ui.get(route)
        assert refused.status_code == 401
        assert refused.json()["detail"] == "Your UI session ended: sign in again."

    await sign_in(ui)
    for route, api_route in routes.items():
        answer = await ui.get(route)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == (await api.get(api_route)).json()
    assert (await ui.get("/ui/charts/timeline.json")).json()["sent"] == 2

    # The API's errors, as JSON.
    bad = await ui.get("/ui/charts/timeline.json", params={"hours": 49})
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["query.hours"]
    missing = await ui.get("/ui/mailings/999999/timeline.json")
    assert missing.status_code == 404
    assert missing.json()["detail"]


async def test_the_pages_hold_the_charts(
    api: httpx.AsyncClient, ui: httpx.AsyncClient, clock: FakeClock
) -> None:
    running = (await make_mailing(api, clock.now, start_in=timedelta(0)))["id"]
    scheduled = (await make_mailing(api, clock.now))["id"]
    await sign_in(ui)

    def chart_of(page: str) -> dict[str, str]:
        (figure,) = Html(page).with_attr("data-chart")
        return figure

    dashboard = await ui.get("/ui/")
    chart = chart_of(dashboard.text)
    assert chart["data-source"] == "/ui/charts/timeline.json"
    assert chart["data-empty"] == "Nothing sent in the last 6 hours."
    assert int(chart["data-refresh"]) > 2  # calmer than the counts' poll
    scripts = [e["src"] for e in Html(dashboard.text).with_attr("src")]
    assert "/static/vendor/uplot-1.6.32/uPlot.iife.min.js" in scripts
    assert "/ui/static/charts.js" in scripts
    for script in scripts:
        assert (await ui.get(script)).status_code == 200

    chart = chart_of((await ui.get(f"/ui/mailings/{running}")).text)
    assert chart["data-source"] == f"/ui/mailings/{running}/timeline.json"
    assert chart["data-empty"] == "Nothing sent yet."
    assert int(chart["data-refresh"]) > 2
    # A mailing that is not running has nothing new to draw: no refresh.
    assert chart_of((await ui.get(f"/ui/mailings/{scheduled}")).text)["data-refresh"] == "0"


async def test_a_deleted_mailing_leaves_the_timeline(
    api: httpx.AsyncClient, seeder: Seeder, clock: FakeClock
) -> None:
    kept = (await make_mailing(api, clock.now, start_in=timedelta(0)))["id"]
    deleted = (await make_mailing(api, clock.now, start_in=timedelta(0)))["id"]
    await seeder.sent(kept, clock.now)
    await seeder.sent(deleted, clock.now, clock.now - MINUTE)
    assert (await api.get("/api/v1/stats/timeline")).json()["sent"] == 3
    assert (await api.delete(f"/api/v1/mailings/{deleted}")).status_code == 204
    after = (await api.get("/api/v1/stats/timeline")).json()
    assert nonzero(after) == {iso(minute(clock.now)): (1, 0)}
    assert (await api.get(f"/api/v1/mailings/{deleted}/timeline")).status_code == 404


async def test_every_mailings_hours_count_a_late_answer_of_a_mailing_that_ended_before_them(
    api: httpx.AsyncClient, seeder: Seeder, clock: FakeClock
) -> None:
    """Over every mailing, counters are read for the mailings that may have some in the range:
    one that ended shortly before it still has the answers to its last requests written after
    its end, and they count; one that ended long before has none there."""
    cancelled_at = clock.now
    late = (await make_mailing(api, cancelled_at, start_in=timedelta(0)))["id"]
    early = (await make_mailing(api, cancelled_at, start_in=timedelta(0)))["id"]
    await seeder.sent(early, cancelled_at)
    assert (await api.post(f"/api/v1/mailings/{late}/cancel")).status_code == 200
    assert (await api.post(f"/api/v1/mailings/{early}/cancel")).status_code == 200
    # The range (the last hour) begins 6 minutes after both ended; an answer to a request in
    # flight at the cancel was written 10 minutes after it.
    now = clock.advance(hours=1, minutes=5)
    await seeder.sent(late, cancelled_at + 10 * MINUTE)
    body = (await api.get("/api/v1/stats/timeline?hours=1")).json()
    assert nonzero(body) == {iso(minute(cancelled_at) + 10 * MINUTE): (1, 0)}
    assert body["sent"] == 1
    assert body["end"] == iso(minute(now))
