"""End-to-end delivery through real processes: ``notiflow serve`` (or ``api`` + ``worker``s),
``notiflow sandbox`` as the provider, PostgreSQL or SQLite; figures from the outside."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.common import Row, database, fill_clients, free_port, insert_clients, server
from bench.import_clients import csv_body

CLIENTS = 100_000
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / TICKS


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def postgres_cpu() -> float:
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as comm:
                if comm.read().strip() not in ("postgres", "postmaster"):
                    continue
            total += cpu_seconds(int(entry))
        except OSError:
            continue
    return total


@contextlib.contextmanager
def sandbox(workdir: Path, latency_ms: float) -> Iterator[tuple[str, int]]:
    port = free_port()
    with open(workdir / f"sandbox-{port}.log", "w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "notiflow",
                "sandbox",
                "--port",
                str(port),
                "--latency-ms",
                str(latency_ms),
                "--token",
                "bench-provider",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NOTIFLOW_LOG_LEVEL": "WARNING"},
        )
    try:
        for _ in range(100):
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"http://127.0.0.1:{port}/_sandbox/config", timeout=1)
                break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1/send", process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def provider_env(url: str, **extra: Any) -> dict[str, str]:
    env = {"NOTIFLOW_PROVIDER_URL": url, "NOTIFLOW_PROVIDER_TOKEN": "bench-provider"}
    env.update({f"NOTIFLOW_{k.upper()}": str(v) for k, v in extra.items()})
    return env


def run_mailing(http: httpx.Client, count: int, *, poll: float = 0.1) -> tuple[int, float, float]:
    """Create a mailing that starts now; return its id, seconds to complete, and when it began."""
    now = datetime.now(UTC)
    began = time.perf_counter()
    mailing = http.post(
        "/api/v1/mailings",
        json={
            "text": "Benchmark message",
            "start_time": now.isoformat(),
            "end_time": (now + timedelta(hours=1)).isoformat(),
        },
    ).json()
    while True:
        stats = http.get(f"/api/v1/mailings/{mailing['id']}/stats").json()
        if stats["status"] == "completed":
            break
        time.sleep(poll)
    elapsed = time.perf_counter() - began
    assert stats["stats"]["sent"] == count, stats["stats"]
    return mailing["id"], elapsed, began


def throughput(kind: str, workdir: Path, latency_ms: float, **settings: Any) -> list[Row]:
    with (
        database(kind, workdir) as url,
        sandbox(workdir, latency_ms) as (provider_url, sandbox_pid),
        server(url, workdir, extra_env=provider_env(provider_url, **settings)) as (http, pid),
    ):
        response = http.post(
            "/api/v1/clients/import",
            content=csv_body(CLIENTS, "t"),
            headers={"Content-Type": "text/csv"},
        )
        response.raise_for_status()
        cpu_before = (cpu_seconds(pid), cpu_seconds(sandbox_pid), postgres_cpu())
        _, elapsed, _ = run_mailing(http, CLIENTS)
        cpu_after = (cpu_seconds(pid), cpu_seconds(sandbox_pid), postgres_cpu())
        rss = peak_rss_mb(pid)
    rate = CLIENTS / elapsed
    used = [(a - b) / elapsed * 100 for a, b in zip(cpu_after, cpu_before, strict=True)]
    target = {0: 5000, 50: 4000}.get(int(latency_ms))
    label = f"send 100k, provider latency {latency_ms:g} ms"
    extra = ", ".join(f"{k}={v}" for k, v in settings.items())
    cpu = f"CPU: notiflow {used[0]:.0f}%, sandbox {used[1]:.0f}%"
    if kind == "postgres":
        cpu += f", postgres {used[2]:.0f}%"
    rows = [
        Row(
            label + (f" ({extra})" if extra else ""),
            kind,
            f"{rate:,.0f} msg/s ({elapsed:.1f} s); {cpu}",
            f">= {target:,} msg/s" if target and kind == "postgres" else "reported",
            rate >= target if target and kind == "postgres" else None,
        ),
        Row(
            "peak RSS of the sending process, 100k mailing",
            kind,
            f"{rss:.0f} MB",
            "<= 300 MB",
            rss <= 300,
        ),
    ]
    return rows


def scale_out(
    workdir: Path, latency_ms: float, concurrency: int, *, target: bool = True
) -> list[Row]:
    """The same mailing with one worker, then two, on PostgreSQL (API in its own process)."""
    rates = []
    for workers in (1, 2):
        with (
            database("postgres", workdir) as url,
            sandbox(workdir, latency_ms) as (provider_url, _),
            server(url, workdir, command="api") as (http, _pid),
        ):
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("NOTIFLOW_")},
                "NOTIFLOW_DATABASE_URL": url,
                "NOTIFLOW_LOG_LEVEL": "WARNING",
                "NOTIFLOW_WORKER_PORT": "0",  # several workers on one host
                **provider_env(provider_url, send_concurrency=concurrency),
            }
            http.post(
                "/api/v1/clients/import",
                content=csv_body(CLIENTS, "t"),
                headers={"Content-Type": "text/csv"},
            ).raise_for_status()
            processes = [
                subprocess.Popen(
                    [sys.executable, "-m", "notiflow", "worker"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for _ in range(workers)
            ]
            try:
                time.sleep(2)
                _, elapsed, _ = run_mailing(http, CLIENTS)
            finally:
                for process in processes:
                    process.terminate()
                for process in processes:
                    process.wait(timeout=30)
            rates.append(CLIENTS / elapsed)
    ratio = rates[1] / rates[0]
    return [
        Row(
            f"2 workers vs 1, latency {latency_ms:g} ms, concurrency {concurrency} per worker",
            "postgres",
            f"{rates[0]:,.0f} → {rates[1]:,.0f} msg/s, ratio {ratio:.2f}",
            ">= 1.5" if target else "reported",
            ratio >= 1.5 if target else None,
        )
    ]


async def _materialise(url: str, count: int) -> float:
    from notiflow.config import Settings
    from notiflow.db.engine import create_engine, create_sessionmaker
    from notiflow.db.session import transaction
    from notiflow.delivery.queue import scheduling
    from notiflow.mailings import service
    from notiflow.mailings.schemas import MailingCreate

    settings = Settings(database_url=url, _env_file=None)
    engine = create_engine(settings)
    maker = create_sessionmaker(engine)
    try:
        async with engine.begin() as connection:
            await insert_clients(connection, count)
        now = datetime.now(UTC)
        async with transaction(maker) as session:
            mailing = await service.create(
                session,
                data=MailingCreate(text="x", start_time=now, end_time=now + timedelta(hours=1)),
                clock=lambda: now,
                notify=lambda: None,
            )
        began = time.perf_counter()
        async with transaction(maker) as session:
            written = await scheduling.materialise(session, mailing.id, now)
        elapsed = time.perf_counter() - began
        assert written == count, written
        return elapsed
    finally:
        await engine.dispose()


def materialise(workdir: Path) -> list[Row]:
    with database("postgres", workdir) as url:
        seconds = asyncio.run(_materialise(url, 1_000_000))
    return [
        Row(
            "write a 1,000,000-client audience (INSERT … SELECT)",
            "postgres",
            f"{seconds:.1f} s",
            "<= 10 s",
            seconds <= 10,
        )
    ]


def start_latency(workdir: Path, repeat: int = 5) -> list[Row]:
    samples = []
    with (
        database("postgres", workdir) as url,
        sandbox(workdir, 0) as (provider_url, _),
        server(url, workdir, extra_env=provider_env(provider_url)) as (http, _pid),
    ):
        http.post("/api/v1/clients", json={"phone": "79001234567"}).raise_for_status()
        control = provider_url.removesuffix("/v1/send")
        for _ in range(repeat):
            httpx.delete(f"{control}/_sandbox/log")
            start = datetime.now(UTC) + timedelta(seconds=2)
            http.post(
                "/api/v1/mailings",
                json={
                    "text": "x",
                    "start_time": start.isoformat(),
                    "end_time": (start + timedelta(hours=1)).isoformat(),
                },
            ).raise_for_status()
            for _ in range(100):
                log = httpx.get(f"{control}/_sandbox/log").json()
                if log:
                    break
                time.sleep(0.1)
            samples.append(log[0]["at"] - start.timestamp())
    worst = max(samples)
    return [
        Row(
            "start latency: start_time → first provider request",
            "postgres",
            f"max {worst * 1000:.0f} ms over {repeat} (mean "
            f"{sum(samples) / len(samples) * 1000:.0f} ms)",
            "<= 1000 ms",
            worst <= 1.0,
        )
    ]


def rss_large(workdir: Path, audience: int = 1_000_000, seconds: float = 20.0) -> list[Row]:
    """Peak memory of the sending process while it sends a 1,000,000-message mailing."""
    with (
        database("postgres", workdir) as url,
        sandbox(workdir, 0) as (provider_url, _),
        server(url, workdir, extra_env=provider_env(provider_url)) as (http, pid),
    ):
        fill_clients(url, audience)
        now = datetime.now(UTC)
        mailing = http.post(
            "/api/v1/mailings",
            json={
                "text": "x",
                "start_time": now.isoformat(),
                "end_time": (now + timedelta(hours=1)).isoformat(),
            },
        ).json()
        time.sleep(seconds)
        sent = http.get(f"/api/v1/mailings/{mailing['id']}/stats").json()["stats"]["sent"]
        rss = peak_rss_mb(pid)
        http.post(f"/api/v1/mailings/{mailing['id']}/cancel")
    return [
        Row(
            f"peak RSS while sending a 1M mailing ({sent:,} sent in {seconds:.0f} s)",
            "postgres",
            f"{rss:.0f} MB",
            "<= 300 MB",
            rss <= 300,
        )
    ]
