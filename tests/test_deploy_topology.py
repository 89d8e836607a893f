"""docker-compose.yml's topology, run for real without Docker.

The test reads docker-compose.yml with .env.example as its ``.env`` (so the ``sandbox`` profile
of its COMPOSE_PROFILES is on) and starts, as plain processes, every service compose would start
from Notiflow's image, in compose's order: ``migrate`` until it exits 0, then ``api``, the
``deploy.replicas`` workers and the sandbox, each with its compose command and environment.
What Docker would provide is mapped instead:

- the ``postgres`` service is a fresh database on the test's PostgreSQL server
  (``NOTIFLOW_TEST_POSTGRES_URL``): ``NOTIFLOW_DATABASE_URL`` points there;
- service host names are 127.0.0.1, and every port a process listens on (``--port``,
  ``NOTIFLOW_WORKER_PORT``) is a free one picked per process, rewritten in the URLs that name it
  (``http://sandbox:8080`` …), so parallel runs never clash;
- Prometheus and the SMTP catcher are not Notiflow's and are not started.

It then sends a mailing of NOTIFLOW_TEST_TOPOLOGY_MESSAGES (10,000) messages through the API
and checks that it completes, that both workers sent some (each worker's /metrics), that the
sandbox accepted every message exactly once, and that every process stops gracefully on
SIGTERM; the figures are printed (``make topology`` shows them).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tests.deploy_support import ENV_EXAMPLE, load_compose, read_env_file

pytestmark = pytest.mark.slow

MESSAGES = int(os.environ.get("NOTIFLOW_TEST_TOPOLOGY_MESSAGES", "10000"))
ADMIN_URL = os.environ.get(
    "NOTIFLOW_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
START_SECONDS = 120  # bounds on waits, not expectations: a 2-core machine shared with others
MAILING_SECONDS = 600
STOP_SECONDS = 60


@dataclass
class Process:
    """One process of the topology: what compose would run in one container."""

    name: str
    argv: list[str]
    env: dict[str, str]
    ready_url: str | None = None  # answers 200 once the process serves
    log_path: Path | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def active_services(compose: dict[str, Any], env: dict[str, str]) -> list[str]:
    """The services `docker compose up` starts, in an order that honours depends_on."""
    profiles = {p for p in env.get("COMPOSE_PROFILES", "").split(",") if p}
    services = compose["services"]
    wanted = [
        name
        for name, service in services.items()
        if not service.get("profiles") or profiles & set(service["profiles"])
    ]
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        for dependency in services[name].get("depends_on", {}):
            visit(dependency)
        ordered.append(name)

    for name in wanted:
        visit(name)
    return ordered


def plan(
    compose: dict[str, Any], env: dict[str, str], database_url: str, logs: Path
) -> list[Process]:
    """The processes of Notiflow's services (those built from this repository), as compose
    would start them, with Docker's names and ports mapped to this machine."""
    services = compose["services"]
    names = [name for name in active_services(compose, env) if "build" in services[name]]
    # Each service's listening ports, and the free ones that stand for them here.
    ports: dict[str, dict[str, int]] = {}
    for name in names:
        command = services[name]["command"]
        listening = set()
        if "--port" in command:
            listening.add(command[command.index("--port") + 1])
        ports[name] = {port: free_port() for port in listening}

    def local(value: str) -> str:
        for service, mapping in ports.items():
            for port, picked in mapping.items():
                value = value.replace(f"//{service}:{port}", f"//127.0.0.1:{picked}")
        return value

    base_env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFLOW_")}
    processes = []
    for name in names:
        service = services[name]
        replicas = service.get("deploy", {}).get("replicas", 1)
        for replica in range(1, replicas + 1):
            label = name if replicas == 1 else f"{name}-{replica}"
            environment = {key: local(str(value)) for key, value in service["environment"].items()}
            if "NOTIFLOW_DATABASE_URL" in environment:
                assert make_url(environment["NOTIFLOW_DATABASE_URL"]).host == "postgres"
                environment["NOTIFLOW_DATABASE_URL"] = database_url
            command = list(service["command"])
            assert command[0] == "notiflow", f"{name}: the image's command is notiflow"
            ready_url = None
            if "--host" in command:
                command[command.index("--host") + 1] = "127.0.0.1"
            if "--port" in command:
                at = command.index("--port") + 1
                command[at] = str(ports[name][command[at]])
                ready_url = f"http://127.0.0.1:{command[at]}/health/ready"
                if command[1] == "sandbox":
                    ready_url = f"http://127.0.0.1:{command[at]}/_sandbox/config"
            if command[1] == "worker":
                port = free_port()  # one per replica: each container has its own 9100
                environment["NOTIFLOW_WORKER_HOST"] = "127.0.0.1"
                environment["NOTIFLOW_WORKER_PORT"] = str(port)
                environment["NOTIFLOW_WORKER_NAME"] = label
                ready_url = f"http://127.0.0.1:{port}/health/ready"
            processes.append(
                Process(
                    name=label,
                    argv=[sys.executable, "-m", "notiflow", *command[1:]],
                    env={**base_env, **environment},
                    ready_url=ready_url,
                    log_path=logs / f"{label}.log",
                )
            )
    return processes


async def _admin(statement: str) -> None:
    engine = create_async_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """A new, empty database (no schema: the topology's migrate makes it)."""
    name = f"notiflow_topology_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        reason = f"PostgreSQL at {make_url(ADMIN_URL)!r} is not reachable: {exc!r}"
        if os.environ.get("NOTIFLOW_TEST_REQUIRE_POSTGRES", "") not in ("", "0", "false"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def start(process: Process, cwd: Path) -> None:
    assert process.log_path is not None
    with process.log_path.open("wb") as log:
        process.popen = subprocess.Popen(
            process.argv, env=process.env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
        )


def wait_ready(process: Process) -> None:
    """Poll the process's readiness URL until it answers 200 (bounded; failing fast if the
    process exits)."""
    assert process.popen is not None
    assert process.ready_url is not None
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            if httpx.get(process.ready_url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        code = process.popen.poll()
        if code is not None:
            pytest.fail(f"{process.name} exited with {code}:\n{process.log_tail()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{process.name} not ready in {START_SECONDS} s:\n{process.log_tail()}")
        time.sleep(0.2)


def stop(processes: list[Process]) -> dict[str, int | None]:
    """SIGTERM every process (as `docker compose down`) and wait; their exit codes."""
    for process in processes:
        if process.popen is not None and process.popen.poll() is None:
            process.popen.send_signal(signal.SIGTERM)
    codes: dict[str, int | None] = {}
    for process in processes:
        if process.popen is None:
            continue
        try:
            codes[process.name] = process.popen.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.popen.kill()
            process.popen.wait()
            codes[process.name] = None
    return codes


def sent_by(metrics: str) -> int:
    """notiflow_messages_total{outcome="sent"} of one process's /metrics."""
    match = re.search(r'^notiflow_messages_total\{outcome="sent"\} (\S+)$', metrics, re.M)
    return int(float(match.group(1))) if match else 0


def clients_csv(rows: int) -> bytes:
    lines = ["phone,operator_code,tag,timezone"]
    lines += [f"79{i:09d},9{i % 100:02d},topology,UTC" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def test_the_compose_topology_sends_a_mailing(fresh_database: str, tmp_path: Path) -> None:
    env = read_env_file(ENV_EXAMPLE)  # the .env of `cp .env.example .env`
    compose = load_compose(env)
    processes = plan(compose, env, fresh_database, tmp_path)
    by_name = {process.name: process for process in processes}
    assert list(by_name) == ["migrate", "api", "worker-1", "worker-2", "sandbox"]

    token = env["NOTIFLOW_API_TOKENS"].split(",")[0]
    began = time.perf_counter()
    try:
        # migrate first: the API and the workers depend on it with
        # condition: service_completed_successfully.
        migrate = by_name["migrate"]
        start(migrate, tmp_path)
        assert migrate.popen is not None
        code = migrate.popen.wait(timeout=START_SECONDS)
        assert code == 0, migrate.log_tail()
        for process in processes[1:]:
            start(process, tmp_path)
        for process in processes[1:]:
            wait_ready(process)
        started = time.perf_counter() - began

        api = by_name["api"].ready_url
        assert api is not None
        base = api.removesuffix("/health/ready")
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120
        ) as http:
            response = http.post(
                "/api/v1/clients/import",
                content=clients_csv(MESSAGES),
                headers={"Content-Type": "text/csv"},
            )
            assert response.status_code == 200, response.text
            now = datetime.now(UTC)
            sending = time.perf_counter()
            response = http.post(
                "/api/v1/mailings",
                json={
                    "text": "Hello from the compose topology",
                    "start_time": now.isoformat(),
                    "end_time": (now + timedelta(hours=1)).isoformat(),
                    "filter": {"tags": ["topology"]},
                },
            )
            assert response.status_code == 201, response.text
            mailing = response.json()["id"]
            deadline = time.monotonic() + MAILING_SECONDS
            while True:
                stats = http.get(f"/api/v1/mailings/{mailing}/stats").json()
                if stats["status"] == "completed":
                    break
                assert time.monotonic() < deadline, f"not completed: {stats}"
                time.sleep(0.2)
            elapsed = time.perf_counter() - sending
            workers_alive = http.get("/api/v1/workers").json()["total"]

        per_worker = {}
        for name in ("worker-1", "worker-2"):
            url = by_name[name].ready_url
            assert url is not None
            per_worker[name] = sent_by(httpx.get(url.replace("/health/ready", "/metrics")).text)
        sandbox_url = by_name["sandbox"].ready_url
        assert sandbox_url is not None
        accepted = httpx.get(sandbox_url.replace("/config", "/stats")).json()
    finally:
        codes = stop(processes)

    duplicates = accepted["accepted"] - accepted["accepted_unique"]
    print(
        f"\ncompose topology on PostgreSQL: {MESSAGES:,} messages\n"
        f"  processes up (migrate, api, 2 workers, sandbox): {started:.1f} s\n"
        f"  mailing created → completed: {elapsed:.1f} s ({MESSAGES / elapsed:,.0f} msg/s)\n"
        f"  sent per worker (their /metrics): "
        + ", ".join(f"{name} {count:,}" for name, count in per_worker.items())
        + f"\n  sandbox: {accepted['accepted']:,} accepted, "
        f"{accepted['accepted_unique']:,} distinct, {duplicates} duplicates\n"
        f"  exit codes after SIGTERM: {codes}"
    )
    assert stats["stats"]["sent"] == MESSAGES, stats
    assert workers_alive == 2
    assert all(count > 0 for count in per_worker.values()), per_worker
    assert sum(per_worker.values()) == MESSAGES, per_worker
    assert accepted["accepted_unique"] == MESSAGES, accepted
    assert duplicates == 0, accepted
    for name, exit_code in codes.items():  # every process stops gracefully on SIGTERM
        if name == "api":
            # uvicorn shuts down, then re-raises the signal it caught (exit status 143 in a
            # container, which Docker and Kubernetes count as a normal stop).
            assert "Application shutdown complete" in by_name[name].log_tail(), name
            assert exit_code in (0, -signal.SIGTERM), name
        else:
            assert exit_code == 0, f"{name}: {exit_code}\n{by_name[name].log_tail()}"
