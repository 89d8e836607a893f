"""Campaign controls while a mailing runs against the sandbox: pause and resume, the auto-pause,
retry of failed messages. Nothing may be sent twice, and nothing after a pause."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import httpx
import pytest

from notiflow.db.session import transaction
from notiflow.delivery.queue import scheduling
from tests.delivery_support import (
    ARRIVAL_LAG,
    SANDBOX_TOKEN,
    LiveClock,
    ThreadedSandbox,
    assert_accepted_twice_only_when_the_answer_was_lost,
    wait_for,
    wait_until,
)
from tests.helpers import iso
from tests.test_delivery import (
    StartEngine,
    assert_counters_match,
    completed,
    create_mailing,
    get_stats,
    import_clients,
    messages_of,
)

SLOW = {"latency_ms": 100}


@pytest.fixture
def clock() -> LiveClock:
    return LiveClock()


CONCURRENCY = 4


async def _sending_slowly(
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
    *,
    clients: int = 300,
    duration: float = 3600,
) -> dict[str, Any]:
    await import_clients(api, clients)
    provider.configure(**SLOW)
    await start_engine(send_concurrency=CONCURRENCY)
    mailing = await create_mailing(api, clock, duration=duration)
    await wait_for(lambda: _at_least(api, mailing["id"], "sent", 5))
    return mailing


async def _at_least(api: httpx.AsyncClient, mailing_id: int, status: str, n: int) -> bool:
    return (await get_stats(api, mailing_id))["stats"][status] >= n  # type: ignore[no-any-return]


async def _settled(api: httpx.AsyncClient, mailing_id: int) -> bool:
    return (await get_stats(api, mailing_id))["stats"]["sending"] == 0  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def engine_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="notiflow.engine")  # a line per attempt
    return caplog


def _assert_nothing_twice(provider: ThreadedSandbox, log: pytest.LogCaptureFixture) -> None:
    """Nothing accepted twice, but for a request whose answer was lost (a timeout on a busy
    machine): the inherent at-least-once case, checked from both logs."""
    assert_accepted_twice_only_when_the_answer_was_lost(provider, log.records)


async def test_pause_stops_requests_and_resume_sends_the_rest_once(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
    engine_log: pytest.LogCaptureFixture,
) -> None:
    mailing = await _sending_slowly(api, clock, provider, start_engine)
    response = await api.post(f"/api/v1/mailings/{mailing['id']}/pause")
    paused_at = clock().timestamp()
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "paused"
    assert response.json()["paused_reason"] == "paused through the API"
    await wait_for(lambda: _settled(api, mailing["id"]))
    await asyncio.sleep(0.5)  # time for requests that should not start to show up
    # Requests under way when the pause answered may still reach the provider an instant later;
    # none starts afterwards (the provider answers in 100 ms, so a later one would be seen).
    after = [e for e in provider.received if e.at > paused_at]
    assert len(after) <= CONCURRENCY
    assert all(e.at <= paused_at + ARRIVAL_LAG for e in after)
    stats = await get_stats(api, mailing["id"])
    assert stats["status"] == "paused"
    counts = stats["stats"]
    assert counts["pending"] > 0
    assert counts["sending"] == 0
    assert counts["sent"] == len(provider.accepted())

    again = await api.post(f"/api/v1/mailings/{mailing['id']}/pause")
    assert again.status_code == 200
    assert again.json()["status"] == "paused"

    provider.configure(latency_ms=0)
    resumed = await api.post(f"/api/v1/mailings/{mailing['id']}/resume")
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "running"
    assert resumed.json()["paused_reason"] is None
    await wait_for(lambda: completed(api, mailing["id"]))
    final = (await get_stats(api, mailing["id"]))["stats"]
    assert final["sent"] == 300
    _assert_nothing_twice(provider, engine_log)
    assert len(set(provider.accepted())) == 300
    await assert_counters_match(app, mailing["id"])


async def test_a_paused_mailing_whose_end_passes_completes_with_the_rest_expired(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    mailing = await _sending_slowly(api, clock, provider, start_engine, duration=3)
    assert (await api.post(f"/api/v1/mailings/{mailing['id']}/pause")).status_code == 200
    paused_at = clock().timestamp()
    await wait_for(lambda: completed(api, mailing["id"]), within=10)
    counts = (await get_stats(api, mailing["id"]))["stats"]
    assert counts["sent"] > 0
    assert counts["expired"] > 0
    assert counts["sent"] + counts["expired"] == 300
    assert all(e.at <= paused_at + ARRIVAL_LAG for e in provider.received)
    late = await api.post(f"/api/v1/mailings/{mailing['id']}/resume")
    assert late.status_code == 409
    await assert_counters_match(app, mailing["id"])


async def test_pause_and_resume_refuse_what_they_cannot_do(
    api: httpx.AsyncClient, clock: LiveClock
) -> None:
    mailing = await create_mailing(api, clock, start_in=600)
    refused = await api.post(f"/api/v1/mailings/{mailing['id']}/pause")
    assert refused.status_code == 409
    assert "only a running mailing can be paused" in refused.json()["detail"]
    assert (await api.post(f"/api/v1/mailings/{mailing['id']}/resume")).status_code == 409
    assert (await api.post("/api/v1/mailings/999/pause")).status_code == 404


async def test_a_paused_mailing_edits_like_a_running_one_and_can_be_cancelled(
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    mailing = await _sending_slowly(api, clock, provider, start_engine)
    url = f"/api/v1/mailings/{mailing['id']}"
    assert (await api.post(f"{url}/pause")).status_code == 200
    text = await api.patch(url, json={"text": "changed"})
    assert text.status_code == 409
    assert "paused" in text.json()["detail"]
    window = await api.patch(url, json={"send_window": {"start": "00:00", "end": "23:59"}})
    assert window.status_code == 200, window.text
    cancelled = await api.post(f"{url}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    counts = (await get_stats(api, mailing["id"]))["stats"]
    assert counts["pending"] == 0


async def test_auto_pause_stops_a_mailing_whose_attempts_mostly_fail(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    await import_clients(api, 200)
    provider.configure(reject_rate=0.8)  # 400: the provider refuses this mailing's messages
    await start_engine(send_concurrency=4, auto_pause_failure_ratio=0.5, auto_pause_window=20)
    mailing = await create_mailing(api, clock)

    async def paused() -> bool:
        status: str = (await get_stats(api, mailing["id"]))["status"]
        return status == "paused"

    await wait_for(paused)
    await wait_for(lambda: _settled(api, mailing["id"]))
    body = (await api.get(f"/api/v1/mailings/{mailing['id']}")).json()
    assert body["paused_reason"].startswith("auto-paused: ")
    assert "the provider refused" in body["paused_reason"]
    assert "of its last 20 attempts" in body["paused_reason"]
    attempts = len(provider.received)
    assert attempts < 200
    await asyncio.sleep(0.5)
    assert len(provider.received) <= attempts + 4  # at most what was in flight
    await assert_counters_match(app, mailing["id"])


async def test_retry_failed_sends_failed_messages_again_and_keeps_counts_right(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
    engine_log: pytest.LogCaptureFixture,
) -> None:
    await import_clients(api, 100)
    provider.configure(reject_rate=0.3)
    await start_engine()
    mailing = await create_mailing(api, clock)
    url = f"/api/v1/mailings/{mailing['id']}"
    await wait_for(lambda: completed(api, mailing["id"]))
    before = (await get_stats(api, mailing["id"]))["stats"]
    assert before["failed"] > 0
    assert before["sent"] + before["failed"] == 100

    provider.configure(reject_rate=0)
    response = await api.post(f"{url}/retry-failed")
    assert response.status_code == 200, response.text
    assert response.json()["requeued"] == before["failed"]
    assert response.json()["mailing"]["status"] == "running"
    await wait_for(lambda: completed(api, mailing["id"]))
    after = (await get_stats(api, mailing["id"]))["stats"]
    assert after["sent"] == 100
    assert after["failed"] == 0
    _assert_nothing_twice(provider, engine_log)
    await assert_counters_match(app, mailing["id"])

    nothing = await api.post(f"{url}/retry-failed", json={"include_expired": True})
    assert nothing.status_code == 200
    assert nothing.json()["requeued"] == 0
    assert nothing.json()["mailing"]["status"] == "completed"


async def test_retry_failed_after_end_time_needs_a_new_end_time(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    await import_clients(api, 20)
    provider.configure(reject_rate=1)
    await start_engine()
    mailing = await create_mailing(api, clock, duration=2)
    url = f"/api/v1/mailings/{mailing['id']}"
    await wait_for(lambda: completed(api, mailing["id"]))
    clock.advance(seconds=5)
    refused = await api.post(f"{url}/retry-failed")
    assert refused.status_code == 409
    assert "end_time" in refused.json()["detail"]
    provider.configure(reject_rate=0)
    first = (await api.get("/api/v1/clients", params={"limit": 1})).json()["items"][0]
    assert (await api.post(f"/api/v1/clients/{first['id']}/opt-out")).status_code == 200
    later = (clock() + timedelta(hours=1)).isoformat()
    response = await api.post(
        f"{url}/retry-failed", json={"end_time": later, "include_expired": True}
    )
    assert response.status_code == 200, response.text
    # Failed, or expired if the engine was slow; not the client who opted out meanwhile.
    assert response.json()["requeued"] == 19
    await wait_until(lambda: len(set(provider.accepted())) == 19)
    await wait_for(lambda: completed(api, mailing["id"]))
    await assert_counters_match(app, mailing["id"])


async def test_retry_failed_refuses_scheduled_and_cancelled_mailings(
    api: httpx.AsyncClient, clock: LiveClock
) -> None:
    mailing = await create_mailing(api, clock, start_in=600)
    url = f"/api/v1/mailings/{mailing['id']}"
    assert (await api.post(f"{url}/retry-failed")).status_code == 409
    assert (await api.post(f"{url}/cancel")).status_code == 200
    assert (await api.post(f"{url}/retry-failed")).status_code == 409


# --- opt-out ---------------------------------------------------------------------------------


async def _client_ids(api: httpx.AsyncClient) -> list[int]:
    page = (await api.get("/api/v1/clients", params={"limit": 1000})).json()
    return sorted(c["id"] for c in page["items"])


async def test_clients_opted_out_while_a_mailing_runs_receive_nothing_more(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
    engine_log: pytest.LogCaptureFixture,
) -> None:
    mailing = await _sending_slowly(api, clock, provider, start_engine)
    ids = await _client_ids(api)
    leaving = ids[-100:]  # claimed already (a claim takes far more than is sent at once)
    opted_at: dict[int, float] = {}
    phones: dict[int, int] = {}
    for client_id in leaving:
        response = await api.post(f"/api/v1/clients/{client_id}/opt-out")
        opted_at[client_id] = clock().timestamp()
        assert response.status_code == 200, response.text
        assert response.json()["opted_out_at"] is not None
        phones[int(response.json()["phone"])] = client_id
    provider.configure(latency_ms=0)
    await wait_for(lambda: completed(api, mailing["id"]))
    for event in provider.received:
        leaver = phones.get(event.phone or 0)
        if leaver is not None:  # sent before its opt-out, or on its way then
            assert event.at <= opted_at[leaver] + ARRIVAL_LAG
    reached = {phones[p] for e in provider.received if (p := e.phone or 0) in phones}
    counts = (await get_stats(api, mailing["id"]))["stats"]
    assert counts["sent"] + counts["cancelled"] == 300
    # Every leaver the provider never heard of is cancelled, with the reason.
    status_of = {m.client_id: m for m in await messages_of(app, mailing["id"])}
    for client_id in set(leaving) - reached:
        message = status_of[client_id]
        assert (message.status, message.last_error) == ("cancelled", "client opted out")
    assert len(reached) < 100
    _assert_nothing_twice(provider, engine_log)
    await assert_counters_match(app, mailing["id"])

    again = await create_mailing(api, clock)
    await wait_for(lambda: completed(api, again["id"]))
    assert (await get_stats(api, again["id"]))["stats"]["total"] == 200

    back = await api.post(f"/api/v1/clients/{leaving[0]}/opt-in")
    assert back.status_code == 200
    assert back.json()["opted_out_at"] is None
    third = await create_mailing(api, clock)
    await wait_for(lambda: completed(api, third["id"]))
    assert (await get_stats(api, third["id"]))["stats"]["total"] == 201


async def test_opt_out_twice_changes_nothing_and_unknown_clients_are_404(
    api: httpx.AsyncClient,
) -> None:
    created = await api.post("/api/v1/clients", json={"phone": "79001112233"})
    client_id = created.json()["id"]
    first = (await api.post(f"/api/v1/clients/{client_id}/opt-out")).json()
    second = (await api.post(f"/api/v1/clients/{client_id}/opt-out")).json()
    assert first["opted_out_at"] == second["opted_out_at"] is not None
    assert (await api.post("/api/v1/clients/999/opt-out")).status_code == 404
    assert (await api.post("/api/v1/clients/999/opt-in")).status_code == 404


# --- test sends --------------------------------------------------------------------------------


async def test_a_test_send_reaches_the_provider_and_stays_out_of_the_statistics(
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    await start_engine()
    mailing = await create_mailing(api, clock, start_in=600)
    url = f"/api/v1/mailings/{mailing['id']}"
    response = await api.post(f"{url}/test", json={"phone": "+79000000001"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["verdict"] == "sent"
    assert body["status_code"] == 200
    assert body["answer"] == '{"code": 0, "message": "OK"}' or '"code"' in body["answer"]
    assert body["provider_message_id"] == 2**62 + body["id"]
    (request,) = provider.received
    assert (request.id, request.phone) == (2**62 + body["id"], 79000000001)
    assert request.text == "hello from the tests"

    provider.configure(reject_rate=1)
    refused = (await api.post(f"{url}/test", json={"phone": "79000000002"})).json()
    assert refused["verdict"] == "fail"
    assert refused["status_code"] == 400
    assert refused["error"].startswith("HTTP 400")

    listed = (await api.get(f"{url}/tests")).json()
    assert [t["id"] for t in listed["items"]] == [refused["id"], body["id"]]
    assert listed["items"][1]["answer"] is None
    stats = (await get_stats(api, mailing["id"]))["stats"]
    assert stats["total"] == 0
    assert (await api.get(url)).json()["status"] == "scheduled"


async def test_a_test_send_to_a_client_and_what_it_refuses(
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    await start_engine()
    mailing = await create_mailing(api, clock, start_in=600)
    url = f"/api/v1/mailings/{mailing['id']}/test"
    client = (await api.post("/api/v1/clients", json={"phone": "79001112233"})).json()
    sent = await api.post(url, json={"client_id": client["id"]})
    assert sent.status_code == 200, sent.text
    assert (sent.json()["client_id"], sent.json()["phone"]) == (client["id"], "79001112233")
    both = await api.post(url, json={"client_id": client["id"], "phone": "79001112233"})
    assert both.status_code == 422
    assert "exactly one" in both.json()["detail"]
    assert (await api.post(url, json={})).status_code == 422
    assert (await api.post(url, json={"client_id": 999})).status_code == 404
    assert (
        await api.post("/api/v1/mailings/999/test", json={"phone": "79001112233"})
    ).status_code == 404
    await api.post(f"/api/v1/clients/{client['id']}/opt-out")
    opted = await api.post(url, json={"phone": "79001112233"})
    assert opted.status_code == 409
    assert "opted out" in opted.json()["detail"]
    assert len(provider.received) == 1


async def test_a_test_send_without_an_engine_uses_the_configured_provider(
    app: Any, api: httpx.AsyncClient, clock: LiveClock, provider: ThreadedSandbox
) -> None:
    mailing = await create_mailing(api, clock, start_in=600)
    url = f"/api/v1/mailings/{mailing['id']}/test"
    none = await api.post(url, json={"phone": "79000000001"})
    assert none.status_code == 503
    assert "NOTIFLOW_PROVIDER_URL" in none.json()["detail"]
    tests = (await api.get(f"/api/v1/mailings/{mailing['id']}/tests")).json()
    assert tests["total"] == 0  # nothing recorded for a send that could not be made
    app.state.settings = app.state.settings.model_copy(
        update={"provider_url": provider.url, "provider_token": SANDBOX_TOKEN}
    )
    sent = await api.post(url, json={"phone": "79000000001"})
    assert sent.status_code == 200, sent.text
    assert sent.json()["verdict"] == "sent"
    assert len(provider.received) == 1


# --- audience preview --------------------------------------------------------------------------


async def test_audience_preview_counts_matches_opt_outs_and_the_open_window(
    api: httpx.AsyncClient, clock: LiveClock
) -> None:
    rows = ["phone,operator_code,tag,timezone"]
    for i in range(40):
        code = "900" if i % 2 else "916"
        tag = ("vip", "new", "")[i % 3]
        zone = "UTC" if i < 20 else "+06:00"
        rows.append(f"7{code}{i:07d},{code},{tag},{zone}")
    body = "\n".join(rows) + "\n"
    imported = await api.post(
        "/api/v1/clients/import", content=body, headers={"Content-Type": "text/csv"}
    )
    assert imported.json()["created"] == 40, imported.text
    clients = (await api.get("/api/v1/clients", params={"limit": 100})).json()["items"]
    vip_900 = [c for c in clients if c["operator_code"] == "900" and c["tag"] == "vip"]
    await api.post(f"/api/v1/clients/{vip_900[0]['id']}/opt-out")
    hour = clock().hour
    window = {"start": f"{hour:02d}:00", "end": f"{(hour + 1) % 24:02d}:00"}
    mailing = {
        "text": "preview",
        "start_time": iso(clock()),  # the window is open for clients on UTC now
        "end_time": iso(clock() + timedelta(hours=2)),
        "filter": {"operator_codes": ["900"], "tags": ["vip"]},
        "send_window": window,
    }
    before = (await api.get("/api/v1/mailings")).json()["total"]
    response = await api.post("/api/v1/mailings/preview", json=mailing)
    assert response.status_code == 200, response.text
    preview = response.json()
    in_utc = [c for c in vip_900 if c["timezone"] == "UTC"]
    assert preview["matching"] == len(vip_900)
    assert preview["opted_out"] == 1
    assert preview["audience"] == len(vip_900) - 1
    assert preview["in_window_now"] == len(in_utc) - (vip_900[0]["timezone"] == "UTC")
    assert [c["id"] for c in preview["sample"]] == [c["id"] for c in vip_900[1:11]]
    assert (await api.get("/api/v1/mailings")).json()["total"] == before  # nothing written

    everyone = (await api.post("/api/v1/mailings/preview", json={**mailing, "filter": None})).json()
    assert (everyone["matching"], everyone["opted_out"], everyone["audience"]) == (40, 1, 39)
    assert everyone["in_window_now"] == 20 - (vip_900[0]["timezone"] == "UTC")
    assert len(everyone["sample"]) == 10

    created = await api.post("/api/v1/mailings", json=mailing)
    by_id = (await api.get(f"/api/v1/mailings/{created.json()['id']}/audience")).json()
    assert by_id == preview
    no_window = {**mailing, "send_window": None}
    assert (await api.post("/api/v1/mailings/preview", json=no_window)).json()[
        "in_window_now"
    ] is None
    assert (await api.get("/api/v1/mailings/999/audience")).status_code == 404


async def test_a_window_that_opens_for_no_client_of_the_audience_is_refused(
    api: httpx.AsyncClient, clock: LiveClock
) -> None:
    """All clients on UTC, window 09:00–10:00, sending 10:00–10:30 UTC: every message would
    expire unsent. Some offset of the world has the window open then, but none of the audience's."""
    body = "phone,tag,timezone\n79000000001,a,UTC\n79000000002,b,-01:00\n"
    await api.post("/api/v1/clients/import", content=body, headers={"Content-Type": "text/csv"})
    day = (clock() + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    mailing = {
        "text": "too late",
        "start_time": iso(day),
        "end_time": iso(day + timedelta(minutes=30)),
        "filter": {"tags": ["a"]},
        "send_window": {"start": "09:00", "end": "10:00"},
    }
    refused = await api.post("/api/v1/mailings", json=mailing)
    assert refused.status_code == 422, refused.text
    assert "for any client of the audience (their time zones: UTC)" in refused.json()["detail"]
    assert refused.json()["errors"][0]["field"] == "send_window"
    # The client at -01:00 is at 09:00–09:30 then: inside the window.
    accepted = await api.post("/api/v1/mailings", json={**mailing, "filter": {"tags": ["a", "b"]}})
    assert accepted.status_code == 201, accepted.text
    narrowed = await api.patch(
        f"/api/v1/mailings/{accepted.json()['id']}", json={"filter": {"tags": ["a"]}}
    )
    assert narrowed.status_code == 422


async def test_the_import_opts_clients_out_and_in_with_an_opted_out_column(
    app: Any, api: httpx.AsyncClient, clock: LiveClock
) -> None:
    async def imported(body: str) -> dict[str, Any]:
        response = await api.post(
            "/api/v1/clients/import", content=body, headers={"Content-Type": "text/csv"}
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    await imported("phone\n79000000001\n79000000002\n79000000003\n")
    mailing = await create_mailing(api, clock, start_in=600)
    clients = (await api.get("/api/v1/clients")).json()["items"]
    by_phone = {c["phone"]: c["id"] for c in clients}
    await api.post(f"/api/v1/mailings/{mailing['id']}/start")  # running, no engine: all pending
    async with transaction(app.state.sessionmaker) as session:
        assert await scheduling.materialise(session, mailing["id"], clock()) == 3

    result = await imported(
        "phone;opted_out\n79000000001;yes\n79000000002;false\n79000000003;maybe\n"
    )
    assert result["ignored_columns"] == []
    assert [r["error"] for r in result["rejected"]] == [
        "opted_out: must be true or false (also 1/0, yes/no)"
    ]
    first = (await api.get(f"/api/v1/clients/{by_phone['79000000001']}")).json()
    assert first["opted_out_at"] is not None
    counts = (await get_stats(api, mailing["id"]))["stats"]
    assert (counts["cancelled"], counts["pending"]) == (1, 2)

    await imported("phone,tag\n79000000001,vip\n")  # no opted_out column: the flag stays
    assert (await api.get(f"/api/v1/clients/{by_phone['79000000001']}")).json()["opted_out_at"]
    await imported("phone,opted_out\n79000000001,0\n")
    assert (await api.get(f"/api/v1/clients/{by_phone['79000000001']}")).json()[
        "opted_out_at"
    ] is None
    as_json = await api.post(
        "/api/v1/clients/import", json=[{"phone": "79000000002", "opted_out": True}]
    )
    assert as_json.status_code == 200, as_json.text
    preview = (await api.get(f"/api/v1/mailings/{mailing['id']}/audience")).json()
    assert (preview["matching"], preview["opted_out"]) == (3, 1)


async def test_auto_pause_leaves_provider_wide_failures_to_the_breaker(
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    start_engine: StartEngine,
) -> None:
    """5xx fail every mailing alike: they are retried, and never pause a mailing."""
    await import_clients(api, 30)
    provider.configure(error_rate=1.0)
    await start_engine(
        auto_pause_failure_ratio=0.5,
        auto_pause_window=10,
        breaker_window=1000,
        breaker_min_requests=1000,
    )
    mailing = await create_mailing(api, clock)
    await wait_until(lambda: len(provider.received) >= 60)
    assert (await api.get(f"/api/v1/mailings/{mailing['id']}")).json()["status"] == "running"
    provider.configure(error_rate=0)
    await wait_for(lambda: completed(api, mailing["id"]))
    assert (await get_stats(api, mailing["id"]))["stats"]["sent"] == 30
