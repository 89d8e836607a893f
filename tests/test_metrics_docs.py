"""docs/metrics.md lists exactly what /metrics exports: the metrics and their labels, of the API
(``notiflow api``) and of a worker (``notiflow worker``), real processes scraped over HTTP; and of
``serve``, which exports both."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from notiflow.app import create_app
from notiflow.config import Settings
from notiflow.db.migrate import upgrade
from tests.metrics_support import exported, free_port

DOC = Path(__file__).parent.parent / "docs" / "metrics.md"
_ROW = re.compile(r"^\| `(\w+)` \| (\w+) \|([^|]*)\| (all|API|engine) \|", re.MULTILINE)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="process_* metrics exist on Linux only"
)


def documented(*groups: str) -> dict[str, frozenset[str]]:
    """The metrics docs/metrics.md says a process of these groups exports, with their labels."""
    rows = _ROW.findall(DOC.read_text())
    assert rows, "no metric found in docs/metrics.md"
    return {
        name: frozenset(re.findall(r"`(\w+)`", labels))
        for name, _type, labels, group in rows
        if group in groups
    }


def test_every_documented_metric_has_a_known_type() -> None:
    for name, kind, _labels, _group in _ROW.findall(DOC.read_text()):
        assert kind in ("counter", "gauge", "histogram"), name
        assert name.endswith("_total") == (kind == "counter"), name


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.send_signal(signal.SIGTERM)
    for process in started:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _start(
    processes: list[subprocess.Popen[bytes]], tmp: Path, env: dict[str, str], *argv: str
) -> None:
    with open(tmp / f"{argv[0]}.log", "wb") as log:
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "notiflow", *argv], env=env, cwd=tmp, stdout=log, stderr=log
            )
        )


def _scrape(base: str, process: subprocess.Popen[bytes], *, first: str) -> str:
    """GET ``first`` (so that a request is counted), then /metrics, once the process answers."""
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, "the process exited"
        try:
            with httpx.Client(base_url=base) as client:
                client.get(first).raise_for_status()
                response = client.get("/metrics")
                response.raise_for_status()
                return response.text
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_the_api_and_a_worker_export_what_the_doc_lists(
    tmp_path: Path, migrated: str, processes: list[subprocess.Popen[bytes]]
) -> None:
    url = migrated
    api_port, worker_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFLOW_")}
    env.update(
        {
            "NOTIFLOW_DATABASE_URL": url,
            "NOTIFLOW_API_TOKENS": "t",
            "NOTIFLOW_LOG_LEVEL": "WARNING",
            "NOTIFLOW_WORKER_HOST": "127.0.0.1",
            "NOTIFLOW_WORKER_PORT": str(worker_port),
        }
    )
    _start(processes, tmp_path, env, "api", "--port", str(api_port))
    _start(processes, tmp_path, env, "worker")
    api = _scrape(f"http://127.0.0.1:{api_port}", processes[0], first="/health")
    worker = _scrape(f"http://127.0.0.1:{worker_port}", processes[1], first="/health/live")
    assert exported(api) == documented("all", "API")
    assert exported(worker) == documented("all", "engine")


@pytest.fixture
def migrated(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path}/notiflow.db"
    upgrade(url)
    return url


async def test_serve_exports_the_api_and_the_engine_metrics(migrated: str) -> None:
    url = migrated
    app: Any = create_app(Settings(database_url=url, _env_file=None), run_engine=True)
    async with app.router.lifespan_context(app):  # starts the engine (and a sandbox)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/health")).status_code == 200
            text = (await client.get("/metrics")).text
    assert exported(text) == documented("all", "API", "engine")
