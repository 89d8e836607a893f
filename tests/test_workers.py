"""Workers as real processes: kill -9 and restart, graceful SIGTERM, several workers at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.delivery_support import (
    FAST,
    SANDBOX_TOKEN,
    LiveClock,
    ThreadedSandbox,
    wait_for,
    wait_until,
)
from tests.test_delivery import completed, create_mailing, get_stats, import_clients, messages_of

CONCURRENCY = 16


@pytest.fixture
def clock() -> LiveClock:
    return LiveClock()


class Workers:
    def __init__(self, settings: Any, provider: ThreadedSandbox, tmp: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFLOW_")}
        self.env.update({f"NOTIFLOW_{k.upper()}": str(v) for k, v in FAST.items()})
        self.env.update(
            {
                "NOTIFLOW_DATABASE_URL": settings.database_url,
                "NOTIFLOW_PROVIDER_URL": provider.url,
                "NOTIFLOW_PROVIDER_TOKEN": SANDBOX_TOKEN,
                "NOTIFLOW_SEND_CONCURRENCY": str(CONCURRENCY),
                "NOTIFLOW_SEND_LEASE_SECONDS": "2",
                "NOTIFLOW_LOG_LEVEL": "INFO",
                "NOTIFLOW_WORKER_PORT": "0",  # several workers on one host
            }
        )
        self.tmp = tmp
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, **settings: object) -> subprocess.Popen[bytes]:
        env = {**self.env, **{f"NOTIFLOW_{k.upper()}": str(v) for k, v in settings.items()}}
        with open(self.tmp / f"worker-{len(self.processes)}.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "notiflow", "worker"], env=env, stdout=log, stderr=log
            )
        self.processes.append(process)
        return process

    def log(self, index: int) -> str:
        return (self.tmp / f"worker-{index}.log").read_text()

    def stopped_line(self, index: int) -> dict[str, Any]:
        """The worker's JSON log line saying it stopped (its log goes to a file: JSON lines)."""
        for line in self.log(index).splitlines():
            if line.startswith("{") and json.loads(line)["event"] == "engine stopped":
                return json.loads(line)  # type: ignore[no-any-return]
        raise AssertionError(f"worker {index} did not log that it stopped")

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def workers(settings: Any, provider: ThreadedSandbox, tmp_path: Path) -> Iterator[Workers]:
    group = Workers(settings, provider, tmp_path)
    yield group
    group.stop_all()


async def _sent_at_least(api: httpx.AsyncClient, mailing_id: int, n: int) -> bool:
    return (await get_stats(api, mailing_id))["stats"]["sent"] >= n  # type: ignore[no-any-return]


async def _half_sent(
    api: httpx.AsyncClient, clock: LiveClock, provider: ThreadedSandbox, workers: Workers
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """A worker process part-way through a 400-message mailing."""
    await import_clients(api, 400)
    provider.configure(latency_ms=30)
    first = workers.start()
    mailing = await create_mailing(api, clock)
    await wait_for(lambda: _sent_at_least(api, mailing["id"], 60), within=30)
    return first, mailing


async def test_kill_9_then_restart_loses_nothing(
    app: Any, api: httpx.AsyncClient, clock: LiveClock, provider: ThreadedSandbox, workers: Workers
) -> None:
    first, mailing = await _half_sent(api, clock, provider, workers)
    first.kill()  # SIGKILL: no chance to give anything back
    first.wait()
    stats = await get_stats(api, mailing["id"])
    assert stats["stats"]["sent"] < 400
    workers.start()
    await wait_for(lambda: completed(api, mailing["id"]), within=60)
    messages = await messages_of(app, mailing["id"])
    assert {m.status for m in messages} == {"sent"}
    accepted = Counter(provider.accepted())
    assert set(accepted) == {m.id for m in messages}
    duplicates = sum(n - 1 for n in accepted.values())
    # Bounded by what was in flight when it died: requests under way, and answers received but
    # not yet written back (at most one batch, at most 50 ms of sending).
    assert duplicates <= CONCURRENCY + int(FAST["send_batch_size"])


async def test_kill_9_at_full_speed_sends_twice_no_more_than_the_bound(
    app: Any, api: httpx.AsyncClient, clock: LiveClock, provider: ThreadedSandbox, workers: Workers
) -> None:
    """Killed a third of the way through a 12,000-message mailing, sending as fast as it can with
    the default concurrency and batch size, then restarted: every message is sent, and no more
    are sent twice than the README's bound, send_concurrency + send_batch_size — what was in
    flight, and what had been sent but not yet written back."""
    total, concurrency, batch = 12_000, 128, 500
    await import_clients(api, total)
    provider.configure(latency_ms=30)
    defaults = {"send_concurrency": concurrency, "send_batch_size": batch}
    first = workers.start(**defaults)
    mailing = await create_mailing(api, clock)
    await wait_until(lambda: len(provider.received) >= total // 3, within=60)
    first.kill()
    first.wait()
    accepted_before = len(provider.accepted())
    assert accepted_before < total
    workers.start(**defaults)
    await wait_for(lambda: completed(api, mailing["id"]), within=120)
    accepted = Counter(provider.accepted())
    assert len(accepted) == total
    twice = sum(n - 1 for n in accepted.values())
    assert twice <= concurrency + batch, twice
    assert max(accepted.values()) <= 2
    assert (await get_stats(api, mailing["id"]))["stats"]["sent"] == total


async def test_sigterm_finishes_in_flight_work_and_loses_nothing(
    app: Any, api: httpx.AsyncClient, clock: LiveClock, provider: ThreadedSandbox, workers: Workers
) -> None:
    first, mailing = await _half_sent(api, clock, provider, workers)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=15) == 0
    assert "engine stopped" in workers.log(0)
    stats = await get_stats(api, mailing["id"])
    assert stats["stats"]["sending"] == 0  # everything in flight was stored or given back
    assert stats["stats"]["sent"] < 400
    workers.start()
    await wait_for(lambda: completed(api, mailing["id"]), within=60)
    accepted = provider.accepted()
    assert len(accepted) == len(set(accepted)) == 400  # not one duplicate


@pytest.mark.postgres_only
@pytest.mark.parametrize("count", [2, 3])
async def test_workers_share_the_queue_without_duplicates(
    app: Any,
    api: httpx.AsyncClient,
    clock: LiveClock,
    provider: ThreadedSandbox,
    workers: Workers,
    count: int,
) -> None:
    await import_clients(api, 3000)
    provider.configure(latency_ms=5, error_rate=0.05)
    for _ in range(count):
        workers.start()
    # Let every worker come up (listening for the NOTIFY of new work) before the work appears.
    await wait_until(
        lambda: all("listening for changes" in workers.log(i) for i in range(count)), within=30
    )
    mailing = await create_mailing(api, clock)
    await wait_for(lambda: completed(api, mailing["id"]), within=90)
    accepted = provider.accepted()
    assert len(accepted) == len(set(accepted)) == 3000
    workers.stop_all()
    sent_by = [workers.stopped_line(i)["sent"] for i in range(count)]
    assert sum(sent_by) == 3000
    assert all(n > 0 for n in sent_by), sent_by


# --- heartbeats: GET /api/v1/workers and the warning of a mailing with no live worker ------------


async def _worker_row(api: httpx.AsyncClient, pid: int, **params: str) -> dict[str, Any] | None:
    response = await api.get("/api/v1/workers", params=params)
    assert response.status_code == 200, response.text
    return next((w for w in response.json()["items"] if w["pid"] == pid), None)


async def _listed(api: httpx.AsyncClient, process: subprocess.Popen[bytes]) -> dict[str, Any]:
    async def seen() -> bool:
        return await _worker_row(api, process.pid) is not None

    await wait_for(seen, within=30)
    row = await _worker_row(api, process.pid)
    assert row is not None
    return row


async def test_a_worker_process_beats_and_once_it_stops_mailings_warn(
    app: Any, api: httpx.AsyncClient, clock: LiveClock, provider: ThreadedSandbox, workers: Workers
) -> None:
    await import_clients(api, 50)
    process = workers.start(worker_heartbeat_seconds=0.5)
    row = await _listed(api, process)
    assert row["alive"] is True
    assert row["sent"] == 0
    mailing = await create_mailing(api, clock)
    assert mailing["warnings"] == []
    await wait_for(lambda: completed(api, mailing["id"]), within=60)

    async def counted() -> bool:
        row = await _worker_row(api, process.pid)
        return row is not None and row["sent"] == 50

    await wait_for(counted, within=10)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    assert await _worker_row(api, process.pid) is None
    stopped = await _worker_row(api, process.pid, all="true")
    assert stopped is not None
    assert stopped["alive"] is False
    assert stopped["stopped_at"] is not None
    assert stopped["sent"] == 50
    waiting = await create_mailing(api, clock)
    assert waiting["status"] == "running"
    assert waiting["warnings"][0].startswith("no live worker: ")


async def test_a_killed_worker_process_is_dead_a_minute_after_its_last_beat(
    app: Any, api: httpx.AsyncClient, clock: LiveClock, provider: ThreadedSandbox, workers: Workers
) -> None:
    process = workers.start(worker_heartbeat_seconds=0.5)
    await _listed(api, process)
    process.kill()
    process.wait()
    row = await _worker_row(api, process.pid)  # it cannot say it died: its row stays as it was
    assert row is not None
    assert row["stopped_at"] is None
    mailing = await create_mailing(api, clock)
    assert mailing["warnings"] == []
    clock.advance(seconds=61)
    assert await _worker_row(api, process.pid) is None
    dead = await _worker_row(api, process.pid, all="true")
    assert dead is not None
    assert dead["alive"] is False
    assert dead["stopped_at"] is None
    warned = (await api.get(f"/api/v1/mailings/{mailing['id']}")).json()
    assert warned["warnings"][0].startswith("no live worker: ")
