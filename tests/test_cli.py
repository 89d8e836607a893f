"""The command line, run as a real process."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

NOTIFLOW = [sys.executable, "-m", "notiflow"]


def _run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NOTIFLOW, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_explains_every_command(tmp_path: Path) -> None:
    result = _run("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("serve", "migrate", "token"):
        assert re.search(rf"{command}\s+\S", result.stdout), result.stdout
    serve_help = _run("serve", "--help", cwd=tmp_path).stdout
    assert "--host" in serve_help
    assert "--port" in serve_help


def test_migrate_and_tokens(tmp_path: Path) -> None:
    env = {"NOTIFLOW_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db"}
    migrated = _run("migrate", cwd=tmp_path, env=env)
    assert migrated.returncode == 0, migrated.stderr
    created = _run("token", "create", "--name", "ops", cwd=tmp_path, env=env)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip().startswith("nf_")
    listed = _run("token", "list", cwd=tmp_path, env=env)
    assert "ops" in listed.stdout
    revoked = _run("token", "revoke", "1", cwd=tmp_path, env=env)
    assert revoked.returncode == 0
    missing = _run("token", "revoke", "1", cwd=tmp_path, env=env)
    assert missing.returncode == 1
    assert "no token" in missing.stderr


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"NOTIFLOW_DEFAULT_TIMEZONE": "Mars/Base"}, "NOTIFLOW_DEFAULT_TIMEZONE: unknown"),
        ({"NOTIFLOW_SEND_CONCURRENCY": "0"}, "NOTIFLOW_SEND_CONCURRENCY"),
        ({"NOTIFLOW_PROVIDER_TIMEOUT": "30", "NOTIFLOW_SEND_LEASE_SECONDS": "20"}, "send_lease"),
    ],
)
def test_bad_setting_is_reported(tmp_path: Path, env: dict[str, str], named: str) -> None:
    result = _run("migrate", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "Invalid configuration" in result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_on_embedded_defaults_generates_a_token(tmp_path: Path) -> None:
    """`notiflow serve` with no configuration: SQLite in the working directory, a printed token."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFLOW_")}
    process = subprocess.Popen(
        [*NOTIFLOW, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = ""
        token = None
        deadline = time.monotonic() + 30
        assert process.stdout is not None
        while time.monotonic() < deadline and token is None:
            line = process.stdout.readline()
            output += line
            match = re.search(r"^\s+(nf_\S+)$", line)
            if match:
                token = match.group(1)
        assert token, output
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        auth = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{port}/api/v1"
        assert httpx.get(f"{base}/stats", headers=auth).status_code == 200
        assert (tmp_path / "notiflow.db").exists()
        assert "built-in sandbox" in output
        # With no provider configured, mailings really run: to the built-in sandbox.
        for phone in ("79001234567", "79001234568"):
            httpx.post(f"{base}/clients", json={"phone": phone}, headers=auth).raise_for_status()
        now = datetime.now(UTC)
        mailing = httpx.post(
            f"{base}/mailings",
            json={
                "text": "hi",
                "start_time": now.isoformat(),
                "end_time": (now + timedelta(hours=1)).isoformat(),
            },
            headers=auth,
        ).json()
        for _ in range(100):
            stats = httpx.get(f"{base}/mailings/{mailing['id']}/stats", headers=auth).json()
            if stats["status"] == "completed":
                break
            time.sleep(0.1)
        assert stats["stats"]["sent"] == 2, stats
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode == 0 or process.returncode == -15
    if process.stdout:
        process.stdout.close()


@pytest.mark.parametrize("argv", [["serve", "--port", "0"], ["serve", "--port", "70000"]])
def test_bad_port(tmp_path: Path, argv: list[str]) -> None:
    result = _run(*argv, cwd=tmp_path)
    assert result.returncode == 2
