from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from notiflow.messages.repository import NewMessage
from notiflow.models import MessageStatus
from tests.conftest import FakeClock
from tests.helpers import error_fields, iso, make_client, make_mailing, seed_messages

pytestmark = pytest.mark.usefixtures("db_url")


async def test_create_future_mailing_is_scheduled(api: httpx.AsyncClient, clock: FakeClock) -> None:
    mailing = await make_mailing(
        api,
        clock.now,
        filter={"operator_codes": ["900", "900", "916"], "tags": ["vip"]},
        send_window={"start": "09:00", "end": "21:30"},
    )
    assert mailing["status"] == "scheduled"
    assert mailing["filter"] == {"operator_codes": ["900", "916"], "tags": ["vip"]}
    assert mailing["send_window"] == {"start": "09:00", "end": "21:30"}
    assert mailing["stats"] == {
        "total": 0,
        "pending": 0,
        "sending": 0,
        "sent": 0,
        "failed": 0,
        "expired": 0,
        "cancelled": 0,
    }
    assert mailing["start_time"] == iso(clock.now + timedelta(hours=1))
    fetched = (await api.get(f"/api/v1/mailings/{mailing['id']}")).json()
    assert fetched == mailing


async def test_create_due_mailing_is_running(api: httpx.AsyncClient, clock: FakeClock) -> None:
    mailing = await make_mailing(api, clock.now, start_in=timedelta(minutes=-5))
    assert mailing["status"] == "running"


async def test_naive_times_are_utc(api: httpx.AsyncClient, clock: FakeClock) -> None:
    start = (clock.now + timedelta(days=1)).replace(tzinfo=None)
    body = {
        "text": "hi",
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(hours=1)).isoformat(),
    }
    response = await api.post("/api/v1/mailings", json=body)
    assert response.status_code == 201
    assert response.json()["start_time"] == start.isoformat() + "Z"
    offset = {**body, "start_time": start.isoformat() + "+03:00"}
    shifted = (await api.post("/api/v1/mailings", json=offset)).json()
    assert shifted["start_time"] == (start - timedelta(hours=3)).isoformat() + "Z"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": "x" * 4097}, "text"),
        ({"text": "a\x00b"}, "text"),
        ({"text": None}, "text"),
        ({"start_time": "tomorrow"}, "start_time"),
        ({"end_time": "2020-01-01T00:00:00Z", "start_time": "2019-01-01T00:00:00Z"}, "end_time"),
        ({"filter": {"operator_codes": ["9000"]}}, "filter.operator_codes.0"),
        ({"filter": {"tags": ["t" * 256]}}, "filter.tags.0"),
        ({"filter": {"colours": []}}, "filter.colours"),
        ({"send_window": {"start": "25:00", "end": "21:00"}}, "send_window.start"),
        ({"send_window": {"start": "09:00", "end": "09:00"}}, "send_window"),
        ({"send_window": {"start": "09:00+03:00", "end": "10:00"}}, "send_window.start"),
        ({"send_window": {"start": "09:00"}}, "send_window.end"),
    ],
)
async def test_create_invalid(
    api: httpx.AsyncClient, clock: FakeClock, change: dict[str, Any], field: str
) -> None:
    body = {
        "text": "hello",
        "start_time": iso(clock.now + timedelta(hours=1)),
        "end_time": iso(clock.now + timedelta(hours=2)),
        **change,
    }
    response = await api.post("/api/v1/mailings", json=body)
    assert response.status_code == 422, response.text
    assert field in error_fields(response)


async def test_end_must_follow_start(api: httpx.AsyncClient, clock: FakeClock) -> None:
    response = await api.post(
        "/api/v1/mailings",
        json={
            "text": "x",
            "start_time": iso(clock.now + timedelta(hours=2)),
            "end_time": iso(clock.now + timedelta(hours=1)),
        },
    )
    assert response.status_code == 422
    assert error_fields(response) == ["end_time"]
    assert "after start_time" in response.json()["detail"]


async def test_window_may_wrap_midnight(api: httpx.AsyncClient, clock: FakeClock) -> None:
    mailing = await make_mailing(api, clock.now, send_window={"start": "22:00", "end": "06:00"})
    assert mailing["send_window"] == {"start": "22:00", "end": "06:00"}


async def test_scheduled_mailing_may_change_everything(
    api: httpx.AsyncClient, clock: FakeClock
) -> None:
    mailing = await make_mailing(api, clock.now)
    url = f"/api/v1/mailings/{mailing['id']}"
    response = await api.patch(url, json={"text": "new text", "filter": {"tags": ["a"]}})
    assert response.status_code == 200
    assert response.json()["text"] == "new text"
    assert response.json()["filter"] == {"operator_codes": [], "tags": ["a"]}
    replaced = await api.put(
        url,
        json={
            "text": "third",
            "start_time": iso(clock.now + timedelta(hours=3)),
            "end_time": iso(clock.now + timedelta(hours=4)),
        },
    )
    assert replaced.status_code == 200
    body = replaced.json()
    assert (body["text"], body["filter"], body["send_window"]) == (
        "third",
        {"operator_codes": [], "tags": []},
        None,
    )


async def test_moving_start_into_the_past_starts_it(
    api: httpx.AsyncClient, clock: FakeClock
) -> None:
    mailing = await make_mailing(api, clock.now)
    response = await api.patch(
        f"/api/v1/mailings/{mailing['id']}", json={"start_time": iso(clock.now)}
    )
    assert response.json()["status"] == "running"


async def test_running_mailing_edit_rules(api: httpx.AsyncClient, clock: FakeClock) -> None:
    mailing = await make_mailing(api, clock.now, start_in=timedelta(0))
    assert mailing["status"] == "running"
    url = f"/api/v1/mailings/{mailing['id']}"
    for change in (
        {"text": "other"},
        {"start_time": iso(clock.now + timedelta(minutes=1))},
        {"filter": {"tags": ["x"]}},
    ):
        response = await api.patch(url, json=change)
        assert response.status_code == 409, change
        assert error_fields(response) == [next(iter(change))]
    later = iso(clock.now + timedelta(hours=5))
    ok = await api.patch(
        url, json={"end_time": later, "send_window": {"start": "10:00", "end": "11:00"}}
    )
    assert ok.status_code == 200
    assert ok.json()["end_time"] == later
    # PUT with the frozen fields unchanged is fine.
    current = ok.json()
    put = await api.put(
        url,
        json={
            "text": current["text"],
            "start_time": current["start_time"],
            "end_time": current["end_time"],
            "filter": current["filter"],
            "send_window": None,
        },
    )
    assert put.status_code == 200, put.text
    assert put.json()["send_window"] is None
    past = await api.patch(url, json={"end_time": iso(clock.now - timedelta(minutes=1))})
    assert past.status_code == 422
    assert error_fields(past) == ["end_time"]


async def test_cancelled_and_completed_are_frozen(api: httpx.AsyncClient, clock: FakeClock) -> None:
    mailing = await make_mailing(api, clock.now)
    url = f"/api/v1/mailings/{mailing['id']}"
    cancelled = await api.post(f"{url}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert (await api.patch(url, json={"text": "x"})).status_code == 409
    assert (
        await api.patch(url, json={"end_time": iso(clock.now + timedelta(days=3))})
    ).status_code == 409
    assert (await api.post(f"{url}/start")).status_code == 409
    again = await api.post(f"{url}/cancel")  # cancelling twice is harmless
    assert again.status_code == 200


async def test_completed_mailing_is_frozen(
    app: Any, api: httpx.AsyncClient, clock: FakeClock
) -> None:
    from notiflow.db.session import transaction
    from notiflow.models import Mailing

    mailing = await make_mailing(api, clock.now, start_in=timedelta(0))
    async with transaction(app.state.sessionmaker) as session:
        row = await session.get(Mailing, mailing["id"])
        assert row is not None
        row.status = "completed"
    url = f"/api/v1/mailings/{mailing['id']}"
    assert (
        await api.patch(url, json={"end_time": iso(clock.now + timedelta(days=3))})
    ).status_code == 409
    assert (await api.post(f"{url}/cancel")).status_code == 409
    assert (await api.post(f"{url}/start")).status_code == 409


async def test_start_now(api: httpx.AsyncClient, clock: FakeClock) -> None:
    mailing = await make_mailing(api, clock.now, start_in=timedelta(days=1))
    response = await api.post(f"/api/v1/mailings/{mailing['id']}/start")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "running"
    assert body["start_time"] == iso(clock.now)
    assert (await api.post(f"/api/v1/mailings/{mailing['id']}/start")).status_code == 409


async def test_start_after_end_time_is_409(api: httpx.AsyncClient, clock: FakeClock) -> None:
    mailing = await make_mailing(api, clock.now, start_in=timedelta(hours=1))
    clock.advance(hours=4)
    response = await api.post(f"/api/v1/mailings/{mailing['id']}/start")
    assert response.status_code == 409
    assert error_fields(response) == ["end_time"]


async def test_cancel_cancels_unfinished_messages(
    app: Any, api: httpx.AsyncClient, clock: FakeClock
) -> None:
    mailing = await make_mailing(api, clock.now, start_in=timedelta(0))
    clients = [await make_client(api, f"7900000000{i}") for i in range(4)]
    statuses = [
        MessageStatus.pending,
        MessageStatus.sending,
        MessageStatus.sent,
        MessageStatus.failed,
    ]
    await seed_messages(
        app,
        mailing["id"],
        [NewMessage(client_id=c["id"], status=s) for c, s in zip(clients, statuses, strict=True)],
        now=clock.now,
    )
    response = await api.post(f"/api/v1/mailings/{mailing['id']}/cancel")
    assert response.json()["stats"] == {
        "total": 4,
        "pending": 0,
        "sending": 0,
        "sent": 1,
        "failed": 1,
        "expired": 0,
        "cancelled": 2,
    }
    cancelled = (
        await api.get(f"/api/v1/mailings/{mailing['id']}/messages", params={"status": "cancelled"})
    ).json()
    assert cancelled["total"] == 2
    assert {m["last_error"] for m in cancelled["items"]} == {"mailing cancelled"}


async def test_delete_mailing_deletes_messages(
    app: Any, api: httpx.AsyncClient, clock: FakeClock
) -> None:
    mailing = await make_mailing(api, clock.now, start_in=timedelta(0))
    client = await make_client(api, "79000000001")
    await seed_messages(app, mailing["id"], [NewMessage(client_id=client["id"])], now=clock.now)
    message_id = (await api.get(f"/api/v1/mailings/{mailing['id']}/messages")).json()["items"][0][
        "id"
    ]
    assert (await api.delete(f"/api/v1/mailings/{mailing['id']}")).status_code == 204
    assert (await api.get(f"/api/v1/mailings/{mailing['id']}")).status_code == 404
    assert (await api.get(f"/api/v1/messages/{message_id}")).status_code == 404
    assert (await api.get("/api/v1/stats")).json()["messages"]["total"] == 0
    assert (await api.get(f"/api/v1/clients/{client['id']}")).status_code == 200


async def test_unknown_mailing_is_404(api: httpx.AsyncClient, clock: FakeClock) -> None:
    calls = [
        ("GET", "/api/v1/mailings/77", None),
        ("PATCH", "/api/v1/mailings/77", {"text": "x"}),
        (
            "PUT",
            "/api/v1/mailings/77",
            {
                "text": "x",
                "start_time": iso(clock.now),
                "end_time": iso(clock.now + timedelta(hours=1)),
            },
        ),
        ("DELETE", "/api/v1/mailings/77", None),
        ("POST", "/api/v1/mailings/77/start", None),
        ("POST", "/api/v1/mailings/77/cancel", None),
        ("GET", "/api/v1/mailings/77/stats", None),
        ("GET", "/api/v1/mailings/77/messages", None),
        ("GET", "/api/v1/messages/77", None),
    ]
    for method, url, body in calls:
        response = await api.request(method, url, json=body)
        assert response.status_code == 404, (method, url, response.text)
        assert "77" in response.json()["detail"]


async def test_list_by_status_newest_first(api: httpx.AsyncClient, clock: FakeClock) -> None:
    first = await make_mailing(api, clock.now)
    second = await make_mailing(api, clock.now, start_in=timedelta(0))
    third = await make_mailing(api, clock.now)
    page = (await api.get("/api/v1/mailings")).json()
    assert [m["id"] for m in page["items"]] == [third["id"], second["id"], first["id"]]
    assert page["total"] == 3
    scheduled = (await api.get("/api/v1/mailings", params={"status": "scheduled"})).json()
    assert [m["id"] for m in scheduled["items"]] == [third["id"], first["id"]]
    assert all("stats" in m for m in scheduled["items"])
    bad = await api.get("/api/v1/mailings", params={"status": "stopped"})
    assert bad.status_code == 422
    assert error_fields(bad) == ["query.status"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must not be empty"),
        ("   \n\t", "must not be empty"),
        ("x" * 4097, "must be at most 4096 characters"),
    ],
)
async def test_text_errors_say_what_is_wrong(
    api: httpx.AsyncClient, clock: FakeClock, text: str, message: str
) -> None:
    body = {
        "text": text,
        "start_time": iso(clock.now + timedelta(hours=1)),
        "end_time": iso(clock.now + timedelta(hours=2)),
    }
    created = await api.post("/api/v1/mailings", json=body)
    assert created.status_code == 422, created.text
    assert created.json()["detail"] == f"text: {message}"
    assert created.json()["errors"][0]["message"] == message
    mailing = await make_mailing(api, clock.now)
    patched = await api.patch(f"/api/v1/mailings/{mailing['id']}", json={"text": text})
    assert patched.status_code == 422, patched.text
    assert patched.json()["detail"] == f"text: {message}"


async def test_text_of_4096_characters_is_fine(api: httpx.AsyncClient, clock: FakeClock) -> None:
    mailing = await make_mailing(api, clock.now, text="я" * 4096)
    assert len(mailing["text"]) == 4096


async def test_pydantic_wording_is_ours(api: httpx.AsyncClient, clock: FakeClock) -> None:
    missing = await api.post("/api/v1/mailings", json={"text": "x"})
    assert missing.status_code == 422
    assert "start_time: required" in missing.json()["detail"]
    many = await api.post(
        "/api/v1/mailings",
        json={
            "text": "x",
            "start_time": iso(clock.now + timedelta(hours=1)),
            "end_time": iso(clock.now + timedelta(hours=2)),
            "filter": {"tags": [str(i) for i in range(1001)]},
        },
    )
    assert many.json()["detail"] == "filter.tags: must have at most 1000 items"


# --- PATCH is a JSON merge patch (RFC 7396) for filter and send_window ------------------------


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"filter": {"tags": ["a"]}}, {"operator_codes": ["900"], "tags": ["a"]}),
        ({"filter": {"operator_codes": ["916"]}}, {"operator_codes": ["916"], "tags": ["vip"]}),
        ({"filter": {"tags": None}}, {"operator_codes": ["900"], "tags": []}),
        ({"filter": {"tags": []}}, {"operator_codes": ["900"], "tags": []}),
        ({"filter": {}}, {"operator_codes": ["900"], "tags": ["vip"]}),
        ({"filter": None}, {"operator_codes": [], "tags": []}),
        ({"filter": {"operator_codes": None, "tags": [""]}}, {"operator_codes": [], "tags": [""]}),
        ({"text": "only the text"}, {"operator_codes": ["900"], "tags": ["vip"]}),
    ],
)
async def test_patch_merges_the_filter(
    api: httpx.AsyncClient, clock: FakeClock, patch: dict[str, Any], expected: dict[str, Any]
) -> None:
    mailing = await make_mailing(
        api, clock.now, filter={"operator_codes": ["900"], "tags": ["vip"]}
    )
    response = await api.patch(f"/api/v1/mailings/{mailing['id']}", json=patch)
    assert response.status_code == 200, response.text
    assert response.json()["filter"] == expected


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"send_window": {"end": "22:00"}}, {"start": "09:00", "end": "22:00"}),
        ({"send_window": {"start": "23:00"}}, {"start": "23:00", "end": "21:00"}),
        ({"send_window": {"start": "08:00", "end": "20:00"}}, {"start": "08:00", "end": "20:00"}),
        ({"send_window": {}}, {"start": "09:00", "end": "21:00"}),
        ({"send_window": None}, None),
    ],
)
async def test_patch_merges_the_send_window(
    api: httpx.AsyncClient, clock: FakeClock, patch: dict[str, Any], expected: Any
) -> None:
    mailing = await make_mailing(
        api, clock.now, duration=timedelta(days=2), send_window={"start": "09:00", "end": "21:00"}
    )
    response = await api.patch(f"/api/v1/mailings/{mailing['id']}", json=patch)
    assert response.status_code == 200, response.text
    assert response.json()["send_window"] == expected


@pytest.mark.parametrize(
    ("window", "patch", "field"),
    [
        # Merged, the window is checked as a whole.
        ({"start": "09:00", "end": "21:00"}, {"end": "09:00"}, "send_window"),
        ({"start": "09:00", "end": "21:00"}, {"start": None}, "send_window.start"),
        ({"start": "09:00", "end": "21:00"}, {"end": "25:00"}, "send_window.end"),
        ({"start": "09:00", "end": "21:00"}, {"middle": "12:00"}, "send_window.middle"),
        # Nothing to merge with: both ends are needed.
        (None, {"start": "10:00"}, "send_window.end"),
        (None, {"end": "10:00"}, "send_window.start"),
    ],
)
async def test_patch_of_the_window_is_checked_whole(
    api: httpx.AsyncClient,
    clock: FakeClock,
    window: dict[str, str] | None,
    patch: dict[str, Any],
    field: str,
) -> None:
    mailing = await make_mailing(api, clock.now, duration=timedelta(days=2), send_window=window)
    response = await api.patch(f"/api/v1/mailings/{mailing['id']}", json={"send_window": patch})
    assert response.status_code == 422, response.text
    assert error_fields(response) == [field]
    unchanged = (await api.get(f"/api/v1/mailings/{mailing['id']}")).json()
    assert unchanged["send_window"] == window


async def test_running_mailing_filter_patch_that_changes_nothing_is_fine(
    api: httpx.AsyncClient, clock: FakeClock
) -> None:
    mailing = await make_mailing(
        api,
        clock.now,
        start_in=timedelta(0),
        filter={"operator_codes": ["900"], "tags": ["vip"]},
        send_window={"start": "00:00", "end": "23:00"},
    )
    url = f"/api/v1/mailings/{mailing['id']}"
    same = await api.patch(url, json={"filter": {"tags": ["vip"]}, "send_window": {"end": "23:30"}})
    assert same.status_code == 200, same.text
    assert same.json()["send_window"] == {"start": "00:00", "end": "23:30"}
    other = await api.patch(url, json={"filter": {"tags": ["new"]}})
    assert other.status_code == 409
    assert error_fields(other) == ["filter"]


# --- a send window that can never open before end_time is refused -----------------------------


def _moment(now: datetime, second: int) -> datetime:
    """Tomorrow at 10:00:``second`` UTC."""
    return (now + timedelta(days=1)).replace(hour=10, minute=0, second=second, microsecond=0)


async def test_window_that_never_opens_is_refused(api: httpx.AsyncClient, clock: FakeClock) -> None:
    # Twenty seconds of sending against twenty other seconds of window: in no time zone do they
    # meet (offsets are whole minutes).
    body = {
        "text": "hello",
        "start_time": iso(_moment(clock.now, 30)),
        "end_time": iso(_moment(clock.now, 50)),
        "send_window": {"start": "09:00:00", "end": "09:00:20"},
    }
    created = await api.post("/api/v1/mailings", json=body)
    assert created.status_code == 422, created.text
    assert error_fields(created) == ["send_window"]
    assert created.json()["detail"].startswith(
        "send_window: 09:00–09:00:20 never opens between start_time and end_time in any "
        "client's time zone"
    )
    # Past the next full minute, and some time zone sees the window open.
    longer = iso(_moment(clock.now, 30) + timedelta(seconds=35))
    ok = await api.post("/api/v1/mailings", json={**body, "end_time": longer})
    assert ok.status_code == 201, ok.text


async def test_a_window_open_somewhere_is_accepted(
    api: httpx.AsyncClient, clock: FakeClock
) -> None:
    # 10:00–10:30 UTC is outside 09:00–10:00 in UTC, but inside it at -01:00.
    mailing = await make_mailing(
        api,
        clock.now,
        start_in=_moment(clock.now, 0) - clock.now,
        duration=timedelta(minutes=30),
        send_window={"start": "09:00", "end": "10:00"},
    )
    assert mailing["send_window"] == {"start": "09:00", "end": "10:00"}


async def test_put_and_patch_cannot_make_a_window_that_never_opens(
    api: httpx.AsyncClient, clock: FakeClock
) -> None:
    start, end = _moment(clock.now, 30), _moment(clock.now, 50)
    mailing = await make_mailing(
        api, clock.now, start_in=start - clock.now, duration=timedelta(hours=1)
    )
    url = f"/api/v1/mailings/{mailing['id']}"
    never = {"start": "09:00:00", "end": "09:00:20"}
    put = await api.put(
        url,
        json={"text": "x", "start_time": iso(start), "end_time": iso(end), "send_window": never},
    )
    assert put.status_code == 422, put.text
    assert error_fields(put) == ["send_window"]
    # Each change alone is fine; together they close the window for everyone.
    assert (await api.patch(url, json={"send_window": never})).status_code == 200
    shorter = await api.patch(url, json={"end_time": iso(end)})
    assert shorter.status_code == 422, shorter.text
    assert error_fields(shorter) == ["send_window"]
    wider = await api.patch(url, json={"end_time": iso(end), "send_window": {"end": "09:00:35"}})
    assert wider.status_code == 200, wider.text


async def test_running_mailing_edit_cannot_close_the_window(
    api: httpx.AsyncClient, clock: FakeClock
) -> None:
    mailing = await make_mailing(
        api, clock.now, start_in=timedelta(minutes=-10), duration=timedelta(minutes=10, seconds=20)
    )
    assert mailing["status"] == "running"
    # From now on, twenty seconds remain: a twenty-second window away from them never opens.
    opens = (clock.now + timedelta(seconds=30)).time()
    closes = (clock.now + timedelta(seconds=50)).time()
    window = {"start": opens.isoformat(), "end": closes.isoformat()}
    url = f"/api/v1/mailings/{mailing['id']}"
    refused = await api.patch(url, json={"send_window": window})
    assert refused.status_code == 422, refused.text
    assert "between now and end_time" in refused.json()["detail"]
    later = iso(clock.now + timedelta(seconds=45))
    moved = await api.patch(url, json={"send_window": window, "end_time": later})
    assert moved.status_code == 200, moved.text


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "a JSON body is required"),
        (b"null", "the body must be a JSON object"),
        (b"[]", "the body must be a JSON object"),
        (b'{"text": "x", "filter": []}', "filter: must be a JSON object"),
    ],
)
async def test_body_shape_errors_are_plain(
    api: httpx.AsyncClient, body: bytes, detail: str
) -> None:
    response = await api.post(
        "/api/v1/mailings", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert detail in response.json()["detail"]
