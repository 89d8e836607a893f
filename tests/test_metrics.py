"""Prometheus metrics of the API: the token, request metrics by route template, and what a real
mailing sent to the sandbox leaves in the counters and the database gauges.

Every app has its own metrics (``create_app`` makes them), so counts here start from zero.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from notiflow.app import create_app
from notiflow.config import Settings
from notiflow.delivery.engine import Engine
from tests.conftest import TOKEN
from tests.delivery_support import LiveClock, ThreadedSandbox, wait_for
from tests.metrics_support import Samples, parse, value
from tests.test_delivery import completed, create_mailing, get_stats, import_clients

StartEngine = Callable[..., Awaitable[Engine]]
ANONYMOUS = {"Authorization": ""}


@pytest.fixture
def clock() -> LiveClock:
    return LiveClock()


async def scrape(api: httpx.AsyncClient, **headers: str) -> Samples:
    response = await api.get("/metrics", headers={**ANONYMOUS, **headers})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


async def test_metrics_need_no_token_by_default(api: httpx.AsyncClient) -> None:
    samples = await scrape(api)
    assert value(samples, "notiflow_build_info", version="0.1.0") == 1
    assert value(samples, "notiflow_messages_total", outcome="sent") == 0
    assert value(samples, "notiflow_mailings", status="running") == 0
    assert value(samples, "notiflow_messages_pending") == 0
    # The API alone runs no engine here: the engine's metrics are not exported.
    assert not any(name.startswith("notiflow_provider_") for name, _ in samples)


async def test_metrics_token_is_required_when_set(settings: Settings, clock: LiveClock) -> None:
    app = create_app(settings.model_copy(update={"metrics_token": "scrape-secret"}), clock=clock)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            missing = await client.get("/metrics")
            api_token = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
            right = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
            health = await client.get("/health")
    finally:
        await app.state.db_engine.dispose()
    for refused in (missing, api_token, wrong):
        assert refused.status_code == 401
        assert "NOTIFLOW_METRICS_TOKEN" in refused.json()["detail"]
        assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert right.status_code == 200
    assert "notiflow_build_info" in right.text
    assert health.status_code == 200  # the token guards /metrics only


async def test_api_requests_are_counted_by_route_template(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/v1/mailings/424242")).status_code == 404
    assert (await api.get("/api/v1/mailings/77")).status_code == 404
    assert (await api.get("/api/v1/clients")).status_code == 200
    assert (await api.get("/no/such/path/31337")).status_code == 404
    assert (await api.post("/health")).status_code == 405
    assert (await api.request("BREW", "/health")).status_code == 405
    assert (await api.get("/docs")).status_code == 200
    too_large = b"x" * (2 * 1024 * 1024)  # answered by the body limiter, outside the routes
    headers = {"Content-Type": "application/json"}
    assert (
        await api.post("/api/v1/clients", content=too_large, headers=headers)
    ).status_code == 413
    samples = await scrape(api)
    requests = "notiflow_http_requests_total"
    route = "/api/v1/mailings/{mailing_id}"
    assert value(samples, requests, method="GET", route=route, status="404") == 2
    assert value(samples, requests, method="GET", route="/api/v1/clients", status="200") == 1
    assert value(samples, requests, method="GET", route="unmatched", status="404") == 1
    assert value(samples, requests, method="POST", route="/health", status="405") == 1
    assert value(samples, requests, method="other", route="/health", status="405") == 1
    assert value(samples, requests, method="GET", route="/docs", status="200") == 1
    assert value(samples, requests, method="POST", route="/api/v1/clients", status="413") == 1
    duration = "notiflow_http_request_duration_seconds_count"
    assert value(samples, duration, method="GET", route=route) == 2
    # Ids never become label values.
    labels = {v for _name, pairs in samples for _k, v in pairs}
    assert not any("424242" in v or "31337" in v for v in labels)


async def test_a_mailing_shows_in_the_counters_and_gauges(
    api: httpx.AsyncClient, clock: LiveClock, provider: ThreadedSandbox, start_engine: StartEngine
) -> None:
    await import_clients(api, 50)
    await start_engine()
    mailing = await create_mailing(api, clock)
    await wait_for(lambda: completed(api, mailing["id"]))
    samples = await scrape(api)
    assert value(samples, "notiflow_messages_total", outcome="sent") == 50
    for outcome in ("failed", "retried", "expired", "cancelled"):
        assert value(samples, "notiflow_messages_total", outcome=outcome) == 0
    # Each message was accepted once: one 2xx each (a lost answer would add a timeout).
    assert value(samples, "notiflow_provider_requests_total", code_class="2xx") == 50
    requests = sum(
        value(samples, "notiflow_provider_requests_total", code_class=c)
        for c in ("2xx", "4xx", "5xx", "timeout", "error")
    )
    assert value(samples, "notiflow_provider_request_duration_seconds_count") == requests
    # The buckets end at the provider timeout (1 s in the tests' engine settings).
    assert value(samples, "notiflow_provider_request_duration_seconds_bucket", le="1.0") == (
        requests
    )
    assert value(samples, "notiflow_claim_seconds_count") >= 1
    assert value(samples, "notiflow_writeback_seconds_count") >= 1
    assert value(samples, "notiflow_mailings", status="completed") == 1
    assert value(samples, "notiflow_mailings", status="running") == 0
    assert value(samples, "notiflow_messages_pending") == 0
    assert value(samples, "notiflow_send_in_flight") == 0
    assert value(samples, "notiflow_breaker_state") == 0
    assert value(samples, "notiflow_provider_auth_paused") == 0
    assert value(samples, "notiflow_engine_up") == 1


async def test_retries_expiry_and_cancels_are_counted(
    api: httpx.AsyncClient, clock: LiveClock, provider: ThreadedSandbox, start_engine: StartEngine
) -> None:
    """With a provider that always fails: messages are retried (5xx), those of a mailing that
    ends expire, those of a cancelled one are cancelled, each counted once; the breaker opens."""
    await import_clients(api, 30, tag="short")
    await import_clients(api, 20, start=100, tag="long")
    provider.configure(error_rate=1.0)
    await start_engine()
    short = await create_mailing(api, clock, duration=2, filter={"tags": ["short"]})
    long = await create_mailing(api, clock, filter={"tags": ["long"]})

    async def failing() -> bool:
        samples = await scrape(api)
        return (
            value(samples, "notiflow_messages_total", outcome="retried") > 0
            and value(samples, "notiflow_breaker_state") > 0
            and (await get_stats(api, long["id"]))["stats"]["total"] == 20
        )

    await wait_for(failing)
    pending = value(await scrape(api), "notiflow_messages_pending")
    assert 0 < pending <= 50
    cancelled = await api.post(f"/api/v1/mailings/{long['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    await wait_for(lambda: completed(api, short["id"]))
    samples = await scrape(api)
    assert value(samples, "notiflow_messages_total", outcome="expired") == 30
    assert value(samples, "notiflow_messages_total", outcome="cancelled") == 20
    assert value(samples, "notiflow_messages_total", outcome="sent") == 0
    assert value(samples, "notiflow_messages_total", outcome="retried") >= 1
    assert value(samples, "notiflow_provider_requests_total", code_class="5xx") >= 1
    assert value(samples, "notiflow_provider_requests_total", code_class="2xx") == 0
    assert value(samples, "notiflow_mailings", status="completed") == 1
    assert value(samples, "notiflow_mailings", status="cancelled") == 1
    assert value(samples, "notiflow_messages_pending") == 0


async def test_refusals_are_counted_as_failed_and_4xx(
    api: httpx.AsyncClient, clock: LiveClock, provider: ThreadedSandbox, start_engine: StartEngine
) -> None:
    await import_clients(api, 12)
    provider.configure(reject_rate=1.0)
    await start_engine()
    mailing = await create_mailing(api, clock)
    await wait_for(lambda: completed(api, mailing["id"]))
    samples = await scrape(api)
    assert value(samples, "notiflow_messages_total", outcome="failed") == 12
    assert value(samples, "notiflow_provider_requests_total", code_class="4xx") == 12
    assert value(samples, "notiflow_breaker_state") == 0  # a refusal is not the provider failing


async def test_a_stopped_engine_is_down(
    app: Any, api: httpx.AsyncClient, provider: ThreadedSandbox, start_engine: StartEngine
) -> None:
    engine = await start_engine()
    assert value(await scrape(api), "notiflow_engine_up") == 1
    await engine.stop()
    assert value(await scrape(api), "notiflow_engine_up") == 0
    assert (await api.get("/health")).status_code == 503  # the same engine, by the same rule
