"""The worker's own HTTP endpoint: /metrics, /health, /health/live, /health/ready, over real HTTP,
in this process and from a real ``notiflow worker`` process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from notiflow.config import Settings
from notiflow.delivery.engine import Engine
from notiflow.health.service import migrations_head
from notiflow.metrics import Metrics
from notiflow.worker_http import WorkerEndpoint
from tests.delivery_support import SANDBOX_TOKEN, LiveClock, ThreadedSandbox, wait_for
from tests.metrics_support import free_port, parse, value
from tests.test_delivery import completed, create_mailing, import_clients
from tests.test_health import set_revision
from tests.test_workers import Workers


@pytest.fixture
def clock() -> LiveClock:
    return LiveClock()


# --- in this process ------------------------------------------------------------------------


@pytest.fixture
async def endpoint(app: Any, settings: Settings) -> AsyncIterator[WorkerEndpoint]:
    here = settings.model_copy(
        update={"worker_host": "127.0.0.1", "worker_port": 0, "metrics_token": "scrape-secret"}
    )
    served = WorkerEndpoint(settings=here, metrics=Metrics(), db_engine=app.state.db_engine)
    await served.start()
    yield served
    await served.stop()


async def _get(endpoint: WorkerEndpoint, path: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{endpoint.port}") as client:
        return await client.get(path, headers=headers)


async def test_health_is_503_until_the_engine_runs_and_once_it_stopped(
    app: Any, settings: Settings, provider: ThreadedSandbox, endpoint: WorkerEndpoint
) -> None:
    before = await _get(endpoint, "/health")
    assert before.status_code == 503
    assert before.json()["reason"] == "the delivery engine has not started"
    engine = Engine(
        settings=settings,
        sessionmaker=app.state.sessionmaker,
        provider_url=provider.url,
        provider_token=SANDBOX_TOKEN,
    )
    endpoint.engine = engine
    await engine.start()
    running = await _get(endpoint, "/health")
    await engine.stop()
    stopped = await _get(endpoint, "/health")
    assert running.status_code == 200
    assert running.json()["status"] == "ok"
    assert running.json()["engine"]["running"] is True
    assert running.json()["engine"]["worker"] == engine.worker
    assert stopped.status_code == 503
    assert stopped.json()["status"] == "failing"
    assert stopped.json()["reason"] == "the delivery engine is not running"
    assert (await _get(endpoint, "/health/live")).status_code == 200


async def test_metrics_token_guards_the_worker_metrics(endpoint: WorkerEndpoint) -> None:
    missing = await _get(endpoint, "/metrics")
    assert missing.status_code == 401
    assert "NOTIFLOW_METRICS_TOKEN" in missing.json()["detail"]
    assert (await _get(endpoint, "/metrics", Authorization="Bearer wrong")).status_code == 401
    right = await _get(endpoint, "/metrics", Authorization="Bearer scrape-secret")
    assert right.status_code == 200
    assert right.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert value(parse(right.text), "notiflow_build_info", version="0.1.0") == 1
    assert (await _get(endpoint, "/health/ready")).status_code == 200  # no token there


async def test_an_unreachable_database_fails_health_and_ready(settings: Settings) -> None:
    from notiflow.db.engine import create_engine

    broken = settings.model_copy(
        update={
            "database_url": "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere",
            "worker_host": "127.0.0.1",
            "worker_port": 0,
        }
    )
    db = create_engine(broken)
    served = WorkerEndpoint(settings=broken, metrics=Metrics(), db_engine=db)
    await served.start()
    try:
        health = await _get(served, "/health")
        ready = await _get(served, "/health/ready")
        live = await _get(served, "/health/live")
    finally:
        await served.stop()
        await db.dispose()
    assert health.status_code == 503
    assert health.json()["reason"].startswith("the database is unreachable")
    assert ready.status_code == 503
    assert live.status_code == 200


# --- a real worker process --------------------------------------------------------------------


@pytest.fixture
def workers(settings: Settings, provider: ThreadedSandbox, tmp_path: Path) -> Any:
    group = Workers(settings, provider, tmp_path)
    yield group
    group.stop_all()


async def _wait_until_serving(base: str, process: subprocess.Popen[bytes]) -> None:
    async def serving() -> bool:
        assert process.poll() is None, "the worker exited"
        try:
            async with httpx.AsyncClient(base_url=base) as client:
                return (await client.get("/health/live")).status_code == 200
        except httpx.TransportError:
            return False

    await wait_for(serving, within=30, interval=0.1)


async def test_a_worker_process_serves_metrics_and_health(
    app: Any, api: httpx.AsyncClient, clock: LiveClock, workers: Workers
) -> None:
    await import_clients(api, 40)
    port = free_port()
    process = workers.start(worker_host="127.0.0.1", worker_port=port)
    base = f"http://127.0.0.1:{port}"
    await _wait_until_serving(base, process)
    mailing = await create_mailing(api, clock)
    await wait_for(lambda: completed(api, mailing["id"]), within=30)
    head = migrations_head()
    async with httpx.AsyncClient(base_url=base) as worker:
        health = await worker.get("/health")
        live = await worker.get("/health/live")
        ready = await worker.get("/health/ready")
        metrics = await worker.get("/metrics")
        await set_revision(app, "0001")
        try:
            stale = await worker.get("/health/ready")
        finally:
            await set_revision(app, head)
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok"
    assert health.json()["database"] == "ok"
    assert health.json()["engine"]["running"] is True
    assert health.json()["engine"]["sent"] == 40
    assert live.json()["status"] == "ok"
    assert ready.status_code == 200
    assert ready.json()["revision"] == head
    assert stale.status_code == 503
    assert stale.json()["revision"] == "0001"
    assert metrics.status_code == 200
    samples = parse(metrics.text)
    assert value(samples, "notiflow_messages_total", outcome="sent") == 40
    assert value(samples, "notiflow_provider_requests_total", code_class="2xx") == 40
    assert value(samples, "notiflow_engine_up") == 1
    # Gauges read from the database are the API's alone (Prometheus would add up the workers').
    assert not any(
        name in ("notiflow_mailings", "notiflow_messages_pending") for name, _ in samples
    )
    # The API sent nothing: it counts only what it stored itself.
    api_samples = parse((await api.get("/metrics")).text)
    assert value(api_samples, "notiflow_messages_total", outcome="sent") == 0
    assert value(api_samples, "notiflow_mailings", status="completed") == 1


def test_a_port_in_use_stops_the_worker_with_one_sentence(
    settings: Settings, provider: ThreadedSandbox, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFLOW_")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env.update(
            {
                "NOTIFLOW_DATABASE_URL": settings.database_url,
                "NOTIFLOW_PROVIDER_URL": provider.url,
                "NOTIFLOW_WORKER_HOST": "127.0.0.1",
                "NOTIFLOW_WORKER_PORT": str(port),
            }
        )
        result = subprocess.run(
            [sys.executable, "-m", "notiflow", "worker"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2, result.stderr
    assert f"NOTIFLOW_WORKER_PORT: port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr
