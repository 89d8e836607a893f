"""Shared pieces of the benchmarks: a real server process, fresh databases, the result table."""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from notiflow.db.migrate import upgrade

TOKEN = "bench-token"
PG_ADMIN = os.environ.get(
    "NOTIFLOW_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


@dataclass
class Row:
    benchmark: str
    database: str
    value: str
    target: str
    ok: bool | None = None


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = ""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages / 2**30:.0f} GiB"
    except (ValueError, OSError):
        pass
    return f"{os.cpu_count()} cores ({cpu}){memory}, Python {platform.python_version()}"


def print_table(rows: list[Row]) -> None:
    headers = ("benchmark", "database", "result", "target", "")
    cells = [
        (
            r.benchmark,
            r.database,
            r.value,
            r.target,
            "" if r.ok is None else ("ok" if r.ok else "MISSED"),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(f"\nmachine: {machine()}")
    print(line)
    print("-" * len(line))
    for cell in cells:
        print("  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _pg(url: str, *statements: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


@contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """A fresh, migrated database of ``kind`` ('sqlite' or 'postgres'); dropped afterwards."""
    if kind == "sqlite":
        path = workdir / "bench.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite+aiosqlite:///{path}"
        upgrade(url)
        yield url
        return
    # A name of its own: two benchmarks on one server (two checkouts) never drop each other's.
    name = f"notiflow_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_pg(PG_ADMIN, f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    try:
        yield url
    finally:
        asyncio.run(_pg(PG_ADMIN, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def server(
    database_url: str,
    workdir: Path,
    *,
    command: str = "serve",
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[httpx.Client, int]]:
    """``notiflow serve`` (or ``api``) as a real process; yields an HTTP client with the bench
    token, and the process id."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NOTIFLOW_")},
        "NOTIFLOW_DATABASE_URL": database_url,
        "NOTIFLOW_API_TOKENS": TOKEN,
        "NOTIFLOW_LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    log = open(workdir / f"server-{port}.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "notiflow", command, "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"server did not start; see {log.name}")
            time.sleep(0.1)
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=600
        ) as client:
            yield client, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


CLIENTS_SQL = text(
    "INSERT INTO clients (phone, operator_code, tag, timezone, created_at, updated_at) "
    "SELECT (70000000000 + g)::text, '900', 'tag' || (g % 50), 'UTC', now(), now() "
    "FROM generate_series(1, :n) AS g"
)


async def insert_clients(connection: AsyncConnection, count: int) -> None:
    """Write ``count`` clients straight into PostgreSQL (faster than the API, for set-up)."""
    await connection.execute(CLIENTS_SQL, {"n": count})
    await connection.execute(text("ANALYZE clients"))


def fill_clients(url: str, count: int) -> None:
    async def run() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                await insert_clients(connection, count)
        finally:
            await engine.dispose()

    asyncio.run(run())


def timed(call: object, repeat: int) -> tuple[float, float]:
    """Median and p95, in milliseconds, of ``repeat`` HTTP requests made by ``call``."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = call()  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]
