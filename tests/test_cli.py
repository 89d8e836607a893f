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
from sqlalchemy.engine import make_url

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
    reader = _run("token", "create", "--name", "dash", "--role", "read", cwd=tmp_path, env=env)
    assert reader.returncode == 0, reader.stderr
    wrong = _run("token", "create", "--role", "root", cwd=tmp_path, env=env)
    assert wrong.returncode == 2
    listed = _run("token", "list", cwd=tmp_path, env=env)
    lines = [line.split("\t")[:3] for line in listed.stdout.splitlines()]
    assert lines == [["id", "name", "role"], ["1", "ops", "admin"], ["2", "dash", "read"]]
    revoked = _run("token", "revoke", "1", cwd=tmp_path, env=env)
    assert revoked.returncode == 0
    missing = _run("token", "revoke", "1", cwd=tmp_path, env=env)
    assert missing.returncode == 1
    assert "no token" in missing.stderr
    for result in (created, reader, listed, revoked, missing):
        assert f"database: sqlite+aiosqlite:///{tmp_path}/cli.db" in result.stderr


def test_the_cli_offers_the_roles_of_the_api() -> None:
    from notiflow.auth.roles import Role
    from notiflow.cli import TokenRole

    assert [role.value for role in TokenRole] == [role.value for role in Role]


def test_token_commands_say_which_database_they_use(tmp_path: Path, postgres_url: str) -> None:
    """On stderr, password hidden: stdout of `token create` stays the token alone."""
    url = make_url(postgres_url)
    if url.password is None:
        url = url.set(password="hunter2")  # not asked for by a server that trusts local users
    password = str(url.password)
    env = {"NOTIFLOW_DATABASE_URL": url.render_as_string(hide_password=False)}
    shown = f"database: {url.render_as_string(hide_password=True)}\n"
    assert ":***@" in shown
    created = _run("token", "create", "--name", "ci-database", cwd=tmp_path, env=env)
    assert created.returncode == 0, created.stderr
    assert re.fullmatch(r"nf_\S+\n", created.stdout), created.stdout
    listed = _run("token", "list", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    token_id = next(
        line.split("\t")[0] for line in listed.stdout.splitlines() if "\tci-database\t" in line
    )
    revoked = _run("token", "revoke", token_id, cwd=tmp_path, env=env)
    assert revoked.returncode == 0, revoked.stderr
    for result in (created, listed, revoked):
        assert shown in result.stderr, result.stderr
        assert password not in result.stderr + result.stdout


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


DATABASE_COMMANDS = [
    ["serve"],
    ["api"],
    ["worker"],
    ["migrate"],
    ["token", "create"],
    ["token", "list"],
    ["token", "revoke", "1"],
]


def _run_all(
    commands: list[list[str]], *, cwd: Path, env: dict[str, str]
) -> list[tuple[list[str], int, str]]:
    """Run several `notiflow` commands at once; (command, exit code, stderr) of each."""
    processes = [
        (
            command,
            subprocess.Popen(
                [*NOTIFLOW, *command],
                cwd=cwd,
                env={**os.environ, **env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for command in commands
    ]
    results = []
    for command, process in processes:
        try:
            _, stderr = process.communicate(timeout=60)
        finally:
            process.kill()
        results.append((command, process.returncode, stderr))
    return results


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql+psycopg2://postgres@127.0.0.1:5432/notiflow", "the driver 'psycopg2' is not"),
        ("sqlite+pysqlite:///notiflow.db", "the driver 'pysqlite' is not"),
        ("mysql://root@127.0.0.1:3306/notiflow", "mysql:// databases are not supported"),
        ("foo://bar", "foo:// databases are not supported"),
        ("notiflow.db", "not a database URL"),
    ],
)
def test_unsupported_database_url_is_reported(tmp_path: Path, url: str, says: str) -> None:
    for command, code, stderr in _run_all(
        [["migrate"], ["token", "list"]],
        cwd=tmp_path,
        env={"NOTIFLOW_DATABASE_URL": url},
    ):
        assert code == 2, (command, stderr)
        assert f"NOTIFLOW_DATABASE_URL: {says}" in stderr, (command, stderr)
        assert "postgresql://user:password@host:5432/database" in stderr  # what to write instead
        assert "Traceback" not in stderr, (command, stderr)


@pytest.mark.parametrize("case", ["unknown database", "refused port", "missing directory"])
def test_unreachable_database_is_reported(
    tmp_path: Path, request: pytest.FixtureRequest, case: str
) -> None:
    """Every command that uses the database stops with one sentence instead of a traceback."""
    if case == "unknown database":
        url = make_url(request.getfixturevalue("postgres_url"))
        url = url.set(drivername="postgresql", database="notiflow_no_such_database")
        says = 'database "notiflow_no_such_database" does not exist; create it'
        commands = DATABASE_COMMANDS
    elif case == "refused port":
        url = make_url(f"postgres://notiflow:hunter2@127.0.0.1:{_free_port()}/notiflow")
        says = "nothing accepts connections at 127.0.0.1:"
        commands = [["migrate"], ["token", "list"]]
    else:
        url = make_url(f"sqlite:///{tmp_path}/missing/notiflow.db")
        says = f"the directory {tmp_path}/missing does not exist; create it"
        commands = [["serve"], ["token", "create"]]
    env = {"NOTIFLOW_DATABASE_URL": url.render_as_string(hide_password=False)}
    for command, code, stderr in _run_all(commands, cwd=tmp_path, env=env):
        assert code == 2, (command, stderr)
        assert stderr.startswith("NOTIFLOW_DATABASE_URL: cannot use the database"), stderr
        assert says in stderr, (command, stderr)
        assert len(stderr.strip().splitlines()) == 1, (command, stderr)
        assert "hunter2" not in stderr
    assert not (tmp_path / "missing").exists()


def test_postgres_and_sqlite_urls_without_a_driver_mean_asyncpg_and_aiosqlite(
    tmp_path: Path, postgres_url: str
) -> None:
    pg = make_url(postgres_url).set(drivername="postgres").render_as_string(hide_password=False)
    for url, shown in [
        (pg, make_url(postgres_url).render_as_string(hide_password=True)),
        (f"sqlite:///{tmp_path}/plain.db", f"sqlite+aiosqlite:///{tmp_path}/plain.db"),
    ]:
        result = _run("migrate", cwd=tmp_path, env={"NOTIFLOW_DATABASE_URL": url})
        assert result.returncode == 0, result.stderr
        assert f"database {shown} is at revision head" in result.stdout


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
        assert f"UI:       http://127.0.0.1:{port}/ui/ (sign in with an API token)" in output
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


def test_the_banner_names_the_uis_sign_in(capsys: pytest.CaptureFixture[str]) -> None:
    from notiflow.cli import _banner
    from notiflow.config import Settings

    oidc = Settings(
        oidc_issuer="https://login.example.com/realms/notiflow",
        oidc_client_id="notiflow-ui",
        oidc_client_secret="secret",
        oidc_allowed_domains="example.com",
        _env_file=None,
    )
    _banner(oidc, "127.0.0.1", 8000, None, engine=False)
    banner = capsys.readouterr().out
    assert (
        "UI:       http://127.0.0.1:8000/ui/ (sign in with login.example.com or an API token)"
        in (banner)
    )


@pytest.mark.parametrize("argv", [["serve", "--port", "0"], ["serve", "--port", "70000"]])
def test_bad_port(tmp_path: Path, argv: list[str]) -> None:
    result = _run(*argv, cwd=tmp_path)
    assert result.returncode == 2
