"""Structured logs: one format for every logger, the context of requests and of the engine's
work, what each level tells, and `notiflow logs`, which reads a JSON log back as one object's
story."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from notiflow.config import Settings
from notiflow.log_search import Subject, read_story
from notiflow.logging import LogFormat, build_formatter, configure_logging, resolve_format
from tests.delivery_support import LiveClock, ThreadedSandbox, wait_for
from tests.helpers import iso, make_client

# --- the format -----------------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_json_off_a_terminal_and_console_on_one() -> None:
    assert resolve_format("auto", io.StringIO()) is LogFormat.json
    assert resolve_format("auto", _Terminal()) is LogFormat.console
    assert resolve_format("console", io.StringIO()) is LogFormat.console
    assert resolve_format("json", _Terminal()) is LogFormat.json


def test_the_format_setting_is_checked() -> None:
    assert Settings(log_format="JSON", _env_file=None).log_format is LogFormat.json
    assert Settings(_env_file=None).log_format is LogFormat.auto
    with pytest.raises(ValueError, match="log_format"):
        Settings(log_format="xml", _env_file=None)


def _logger_writing_to(stream: io.StringIO, fmt: LogFormat) -> logging.Logger:
    logger = logging.getLogger(f"notiflow.test.{fmt.value}")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(build_formatter(fmt))
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def test_a_json_line_has_its_head_its_fields_and_its_context() -> None:
    stream = io.StringIO()
    logger = _logger_writing_to(stream, LogFormat.json)
    before = datetime.now(UTC)
    with structlog.contextvars.bound_contextvars(request_id="r-9", mailing_id=5):
        logger.info("mailing paused", extra={"reason": "by hand", "at": before})
    logger.warning("outside")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert list(first)[:4] == ["timestamp", "level", "logger", "event"]
    assert first["level"] == "info"
    assert first["logger"] == "notiflow.test.json"
    assert first["event"] == "mailing paused"
    assert first["reason"] == "by hand"
    assert first["request_id"] == "r-9"
    assert first["mailing_id"] == 5
    assert first["timestamp"].endswith("Z")
    stamped = datetime.fromisoformat(first["timestamp"])
    assert before - timedelta(seconds=1) <= stamped <= datetime.now(UTC)
    assert first["at"] == before.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert second["event"] == "outside"
    assert "mailing_id" not in second
    assert "request_id" not in second


def test_an_exception_is_a_field_of_its_json_line() -> None:
    stream = io.StringIO()
    logger = _logger_writing_to(stream, LogFormat.json)
    try:
        raise ValueError("broken on purpose")
    except ValueError:
        logger.exception("send crashed", extra={"message_id": 3})
    (line,) = stream.getvalue().splitlines()  # the traceback too stays on its one line
    record = json.loads(line)
    assert record["level"] == "error"
    assert record["message_id"] == 3
    assert "Traceback" in record["exception"]
    assert "ValueError: broken on purpose" in record["exception"]


def test_console_lines_are_readable_key_values_without_colours() -> None:
    stream = io.StringIO()
    logger = _logger_writing_to(stream, LogFormat.console)
    logger.info("mailing completed", extra={"mailing_id": 4, "sent": 9})
    line = stream.getvalue()
    assert "mailing completed" in line
    assert "mailing_id=4" in line
    assert "sent=9" in line
    assert "[info" in line
    assert "\x1b[" not in line
    assert not line.startswith("{")


@contextmanager
def _root_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()


def test_configure_logging_puts_one_handler_on_the_root_for_every_logger() -> None:
    stream = io.StringIO()
    with _root_restored():
        assert configure_logging("INFO", "auto", stream=stream) is LogFormat.json
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
        logging.getLogger("aiohttp.client").warning("connection reset")
        structlog.stdlib.get_logger("notiflow.other").info("structlog too", mailing_id=8)
        logging.getLogger("notiflow.engine").debug("not at INFO")
        assert configure_logging("INFO", "console", stream=io.StringIO()) is LogFormat.console
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["logger"], line["event"]) for line in lines] == [
        ("uvicorn.error", "Started server process [42]"),
        ("aiohttp.client", "connection reset"),
        ("notiflow.other", "structlog too"),
    ]
    assert lines[2]["mailing_id"] == 8


# --- requests ---------------------------------------------------------------------------------


@pytest.fixture
def json_log(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """What Notiflow's loggers write at INFO, as JSON lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(build_formatter(LogFormat.json))
    logger = logging.getLogger("notiflow")
    caplog.set_level(logging.INFO, logger="notiflow")
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_a_request_id_is_generated_and_echoed(api: httpx.AsyncClient) -> None:
    first = await api.get("/api/v1/mailings")
    second = await api.get("/health")
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    for request_id in ids:
        assert len(request_id) == 32
        assert int(request_id, 16) >= 0
    assert ids[0] != ids[1]


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("abc-123", True),
        ("x" * 100, True),
        ("x" * 101, False),
        ("has space", False),
        ("", False),
        ("caf\u00e9", False),
    ],
)
async def test_a_sane_incoming_request_id_is_kept(
    api: httpx.AsyncClient, sent: str, kept: bool
) -> None:
    response = await api.get(
        "/api/v1/stats",
        headers={b"X-Request-ID": sent.encode()},  # bytes: UTF-8 for é
    )
    assert response.status_code == 200
    echoed = response.headers["x-request-id"]
    assert (echoed == sent) is kept
    if not kept:
        assert len(echoed) == 32


async def test_an_api_write_is_logged_with_who_what_and_its_ids(
    api: httpx.AsyncClient, json_log: io.StringIO
) -> None:
    client = await make_client(api, "79001234567")
    now = datetime.now(UTC)
    created = await api.post(
        "/api/v1/mailings",
        json={"text": "hi", "start_time": iso(now), "end_time": iso(now + timedelta(hours=1))},
        headers={"X-Request-ID": "create-1"},
    )
    assert created.status_code == 201
    mailing_id = created.json()["id"]
    paused = await api.post(f"/api/v1/mailings/{mailing_id}/pause")
    assert paused.status_code == 200
    resumed = await api.post(f"/api/v1/mailings/{mailing_id}/resume", headers={"X-Request-ID": "r"})
    assert resumed.status_code == 200
    missing = await api.post("/api/v1/mailings/999/pause")
    assert missing.status_code == 404
    lines = _lines(json_log)
    writes = [line for line in lines if line["event"] == "api write"]
    assert [w["action"] for w in writes] == [
        "client.create",
        "mailing.create",
        "mailing.pause",
        "mailing.resume",
    ]  # the request that failed (404) wrote nothing
    assert writes[0]["client_id"] == client["id"]
    assert writes[1]["mailing_id"] == mailing_id
    assert writes[1]["request_id"] == "create-1"
    assert writes[2]["mailing_id"] == mailing_id
    assert writes[2]["request_id"] == paused.headers["x-request-id"]
    for write in writes:
        assert write["actor"] == "config#1"
        assert write["level"] == "info"
        assert write["method"] == "POST"
        assert write["route"].startswith("/api/v1/")
    events = [line["event"] for line in lines if line.get("mailing_id") == mailing_id]
    assert events[:2] == ["api write", "mailing started"]  # who did it, then what it did
    told = {line["event"]: line for line in lines if line["logger"] == "notiflow.mailings"}
    assert told["mailing started"]["mailing_id"] == mailing_id
    assert told["mailing started"]["request_id"] == "create-1"
    assert told["mailing paused"]["reason"] == "paused through the API"
    assert told["mailing resumed"]["request_id"] == "r"
    assert "79001234567" not in json_log.getvalue()  # no phone at INFO (the audit masks it)
    assert structlog.contextvars.get_contextvars() == {}  # nothing left bound after a request


async def test_cancel_delete_and_retry_failed_are_logged(
    api: httpx.AsyncClient, json_log: io.StringIO
) -> None:
    now = datetime.now(UTC)
    body = {"text": "hi", "start_time": iso(now), "end_time": iso(now + timedelta(hours=1))}
    first = (await api.post("/api/v1/mailings", json=body)).json()["id"]
    second = (await api.post("/api/v1/mailings", json=body)).json()["id"]
    assert (await api.post(f"/api/v1/mailings/{first}/retry-failed")).status_code == 200
    assert (await api.post(f"/api/v1/mailings/{first}/cancel")).status_code == 200
    assert (await api.delete(f"/api/v1/mailings/{second}")).status_code == 204
    told = [
        (line["event"], line["mailing_id"])
        for line in _lines(json_log)
        if line["logger"] == "notiflow.mailings"
    ]
    assert told == [
        ("mailing started", first),
        ("mailing started", second),
        ("mailing retry-failed", first),
        ("mailing cancelled", first),
        ("mailing deleted", second),
    ]


# --- the engine -------------------------------------------------------------------------------


@pytest.fixture
def clock() -> LiveClock:
    return LiveClock()


@pytest.fixture
def engine_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="notiflow")  # before the engine starts: it caches it
    return caplog


def _records(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.msg == event]


async def test_attempts_retries_and_the_completion_tell_what_happened(
    api: httpx.AsyncClient,
    provider: ThreadedSandbox,
    start_engine: Any,
    engine_log: pytest.LogCaptureFixture,
) -> None:
    phones = [f"7900555000{n}" for n in range(3)]
    ids = sorted([(await make_client(api, phone))["id"] for phone in phones])
    provider.configure(error_rate=1.0)
    await start_engine(breaker_window=1000, breaker_min_requests=1000)  # the breaker stays shut
    now = datetime.now(UTC)
    mailing = (
        await api.post(
            "/api/v1/mailings",
            json={"text": "hi", "start_time": iso(now), "end_time": iso(now + timedelta(hours=1))},
        )
    ).json()

    def retried() -> set[Any]:
        return {r.client_id for r in _records(engine_log, "message will be retried")}  # type: ignore[attr-defined]

    async def all_retried() -> bool:
        return retried() == set(ids)

    await wait_for(all_retried)
    provider.configure(error_rate=0.0)

    async def done() -> bool:
        return bool(_records(engine_log, "mailing completed"))

    await wait_for(done)
    attempts = _records(engine_log, "send attempt")
    assert {r.levelno for r in attempts} == {logging.DEBUG}
    for record in attempts:
        fields: Any = record
        assert fields.mailing_id == mailing["id"]
        assert fields.phone in phones  # at DEBUG only
        assert fields.latency_ms >= 0
        if fields.verdict == "sent":
            assert fields.status_code == 200
            assert fields.error is None
        else:
            assert fields.verdict == "retry"
            assert 500 <= fields.status_code < 600
            assert fields.error == f"HTTP {fields.status_code}"
    assert {r.client_id for r in attempts if r.verdict == "sent"} == set(ids)  # type: ignore[attr-defined]
    for record in _records(engine_log, "message will be retried"):
        fields = record
        assert record.levelno == logging.WARNING
        assert fields.mailing_id == mailing["id"]
        assert isinstance(fields.retry_at, datetime)
        assert fields.retry_at.tzinfo is not None
        assert fields.error.startswith("HTTP 5")
        assert "provider is unwell" in fields.reason
    (completion,) = _records(engine_log, "mailing completed")
    told: Any = completion
    assert (told.mailing_id, told.total, told.sent, told.failed, told.expired) == (
        mailing["id"],
        3,
        3,
        0,
        0,
    )
    assert told.cancelled == 0
    assert told.attempts == len(attempts)
    assert told.attempts >= 6
    assert told.retried_messages == 3
    assert sum(told.errors.values()) == len(attempts) - 3
    (written,) = _records(engine_log, "audience written")
    assert written.messages == 3  # type: ignore[attr-defined]
    for record in engine_log.records:
        if record.levelno >= logging.INFO:
            shown = json.dumps(record.__dict__, default=str)
            assert not any(phone in shown for phone in phones), record.msg


async def _sending_mailing(api: httpx.AsyncClient, count: int) -> dict[str, Any]:
    for n in range(count):
        await make_client(api, f"790077700{n:02d}")
    now = datetime.now(UTC)
    response = await api.post(
        "/api/v1/mailings",
        json={"text": "hi", "start_time": iso(now), "end_time": iso(now + timedelta(hours=1))},
    )
    return response.json()  # type: ignore[no-any-return]


async def test_the_breaker_tells_each_change_of_its_state(
    api: httpx.AsyncClient,
    provider: ThreadedSandbox,
    start_engine: Any,
    engine_log: pytest.LogCaptureFixture,
) -> None:
    provider.configure(error_rate=1.0)
    await start_engine(breaker_window=10, breaker_min_requests=5)
    mailing = await _sending_mailing(api, 20)

    async def opened() -> bool:
        return bool(_records(engine_log, "circuit breaker open: the provider is failing"))

    await wait_for(opened)
    provider.configure(error_rate=0.0)

    async def done() -> bool:
        return bool(_records(engine_log, "mailing completed"))

    await wait_for(done)
    changes = [
        (r.previous, r.breaker)  # type: ignore[attr-defined]
        for r in engine_log.records
        if r.msg.startswith("circuit breaker")
    ]
    assert changes[0] == ("closed", "open")
    assert changes[-1] == ("half_open", "closed")
    assert ("open", "half_open") in changes
    for record in engine_log.records:
        if record.msg.startswith("circuit breaker"):
            assert record.levelno == logging.WARNING
    (opening,) = _records(engine_log, "circuit breaker open: the provider is failing")
    assert opening.error.startswith("HTTP 5")  # type: ignore[attr-defined]
    assert opening.pause_seconds > 0  # type: ignore[attr-defined]
    assert _records(engine_log, "mailing completed")[0].sent == 20  # type: ignore[attr-defined]
    assert mailing["id"] == _records(engine_log, "mailing completed")[0].mailing_id  # type: ignore[attr-defined]


async def test_a_refused_token_pauses_and_resumes_loudly(
    api: httpx.AsyncClient,
    provider: ThreadedSandbox,
    start_engine: Any,
    engine_log: pytest.LogCaptureFixture,
) -> None:
    provider.configure(token="another-token")
    await start_engine()
    await _sending_mailing(api, 3)

    async def refused() -> bool:
        return bool(
            _records(
                engine_log,
                "the provider refused the token: sending is paused, "
                "messages stay pending; check NOTIFLOW_PROVIDER_TOKEN",
            )
        )

    await wait_for(refused)
    provider.reset()  # the engine's token is good again

    async def done() -> bool:
        return bool(_records(engine_log, "mailing completed"))

    await wait_for(done)
    states = [
        (r.levelno, r.provider_state) for r in engine_log.records if hasattr(r, "provider_state")
    ]
    assert states == [(logging.ERROR, "unauthorized"), (logging.WARNING, "ok")]
    assert "another-token" not in engine_log.text
    assert "sandbox-token" not in engine_log.text
    for record in engine_log.records:
        assert "Bearer" not in json.dumps(record.__dict__, default=str)


async def test_a_mailing_waiting_for_its_send_window_says_so_once(
    api: httpx.AsyncClient,
    provider: ThreadedSandbox,
    start_engine: Any,
    engine_log: pytest.LogCaptureFixture,
) -> None:
    for n in range(5):
        await make_client(api, f"7900666000{n}")
    now = datetime.now(UTC)
    opens = (now.hour + 2) % 24
    window = {"start": f"{opens:02d}:00", "end": f"{(opens + 1) % 24:02d}:00"}
    mailing = (
        await api.post(
            "/api/v1/mailings",
            json={
                "text": "hi",
                "start_time": iso(now),
                "end_time": iso(now + timedelta(days=1)),
                "send_window": window,
            },
        )
    ).json()
    await start_engine()

    async def waiting() -> bool:
        return bool(_records(engine_log, "mailing waits for its send window"))

    await wait_for(waiting)
    await wait_for(lambda: _given_back(api, mailing["id"]))
    (said,) = _records(engine_log, "mailing waits for its send window")
    fields: Any = said
    assert said.levelno == logging.INFO
    assert fields.mailing_id == mailing["id"]
    assert fields.opens_at.hour == opens
    assert fields.opens_at > now
    assert not provider.received


async def _given_back(api: httpx.AsyncClient, mailing_id: int) -> bool:
    stats = (await api.get(f"/api/v1/mailings/{mailing_id}/stats")).json()["stats"]
    return bool(stats["total"] == 5 and stats["pending"] == 5)


# --- `notiflow serve` for real, and `notiflow logs` on what it wrote ------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _notiflow(*args: str, stdin: str | None = None, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "notiflow", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if not k.startswith("NOTIFLOW_")},
        timeout=60,
    )


API_TOKEN = "logs-test-token-0123456789"
PHONE = "79005550123"


@pytest.fixture(scope="module")
def served_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """A real `notiflow serve` (SQLite, DEBUG, stderr to a file: JSON by default) that runs one
    small mailing against its built-in sandbox; its log and the ids of what was made."""
    tmp = tmp_path_factory.mktemp("serve")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFLOW_")}
    env.update(
        NOTIFLOW_DATABASE_URL=f"sqlite:///{tmp}/notiflow.db",
        NOTIFLOW_LOG_LEVEL="DEBUG",
        NOTIFLOW_API_TOKENS=API_TOKEN,
        NOTIFLOW_ENGINE_POLL_SECONDS="0.2",
    )
    log_path = tmp / "notiflow.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "notiflow", "serve", "--port", str(port)],
            cwd=tmp,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        with httpx.Client(base_url=f"{base}/api/v1", headers=auth) as api:
            other = api.post("/clients", json={"phone": "79005550999", "tag": "other"}).json()
            client = api.post("/clients", json={"phone": PHONE, "tag": "vip"}).json()
            now = datetime.now(UTC)
            mailing = api.post(
                "/mailings",
                json={
                    "text": "Hello!",
                    "start_time": iso(now),
                    "end_time": iso(now + timedelta(hours=1)),
                    "filter": {"tags": ["vip"]},
                },
                headers={"X-Request-ID": "create-mailing-1"},
            ).json()
            while api.get(f"/mailings/{mailing['id']}/stats").json()["status"] != "completed":
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            (message,) = api.get(f"/mailings/{mailing['id']}/messages").json()["items"]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    ids = {
        "mailing": mailing["id"],
        "message": message["id"],
        "client": client["id"],
        "other_client": other["id"],
    }
    return log_path, ids


def test_every_line_of_serve_is_json_uvicorn_s_too(served_log: tuple[Path, dict[str, int]]) -> None:
    log_path, _ = served_log
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]  # each one JSON
    loggers = {line["logger"] for line in lines}
    assert {"uvicorn.error", "uvicorn.access", "notiflow.api", "notiflow.engine"} <= loggers
    started = [line for line in lines if line["logger"] == "uvicorn.error"]
    assert any(line["event"].startswith("Started server process") for line in started)
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert access
    assert all(line["request_id"] and line["method"] and line["status_code"] for line in access)
    assert {line["level"] for line in access} == {
        "debug"
    }  # on only at DEBUG: a path may hold a phone
    for line in lines:
        assert {"timestamp", "level", "logger", "event"} <= set(line)


def test_no_token_and_no_phone_below_debug(served_log: tuple[Path, dict[str, int]]) -> None:
    log_path, _ = served_log
    text = log_path.read_text()
    assert API_TOKEN not in text
    assert "Bearer" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    shown = [line for line in lines if line["level"] != "debug"]
    assert shown
    assert not [line for line in shown if PHONE in json.dumps(line)]
    assert [line for line in lines if PHONE in json.dumps(line)]  # at DEBUG it is there


def test_notiflow_logs_tells_the_story_of_a_message(
    served_log: tuple[Path, dict[str, int]],
) -> None:
    log_path, ids = served_log
    result = _notiflow("logs", "--message", str(ids["message"]), str(log_path), cwd=log_path.parent)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout.splitlines()
    wanted = [
        "api write",  # the POST that created the mailing
        "mailing started",
        "audience written",
        "send attempt",
        "mailing completed",
    ]
    found = [next(i for i, line in enumerate(out) if f"] {event} " in line) for event in wanted]
    assert found == sorted(found), out
    assert "action=mailing.create" in out[found[0]]
    assert "request_id=create-mailing-1" in out[found[0]]
    assert "messages=1" in out[found[2]]
    attempt = out[found[3]]
    assert "status_code=200" in attempt
    assert "verdict=sent" in attempt
    assert "latency_ms=" in attempt
    assert "sent=1" in out[found[4]]
    assert "failed=0" in out[found[4]]
    assert not any("client.create" in line for line in out)  # the client's, not the message's

    as_json = _notiflow(
        "logs", "--message", str(ids["message"]), "--json", str(log_path), cwd=log_path.parent
    )
    story = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert len(story) == len(out)
    stamps = [line["timestamp"] for line in story]
    assert stamps == sorted(stamps)
    for line in story:
        assert line.get("message_id", ids["message"]) == ids["message"]
        assert line["mailing_id"] == ids["mailing"]


def test_notiflow_logs_of_a_client_and_of_a_mailing(
    served_log: tuple[Path, dict[str, int]],
) -> None:
    log_path, ids = served_log
    client = _notiflow(
        "logs", "--client", str(ids["client"]), "--json", str(log_path), cwd=log_path.parent
    )
    events = [json.loads(line)["event"] for line in client.stdout.splitlines()]
    assert events[0] == "api write"  # its creation
    assert "send attempt" in events
    assert "mailing completed" in events
    other = _notiflow(
        "logs", "--client", str(ids["other_client"]), "--json", str(log_path), cwd=log_path.parent
    )
    told = [json.loads(line) for line in other.stdout.splitlines()]
    assert [line["event"] for line in told] == ["api write", "http request"]  # POST /clients
    assert told[0]["action"] == "client.create"
    assert told[1]["method"] == "POST"
    assert told[1]["path"] == "/api/v1/clients"
    mailing = _notiflow(
        "logs", "--mailing", str(ids["mailing"]), "--json", str(log_path), cwd=log_path.parent
    )
    lines = [json.loads(line) for line in mailing.stdout.splitlines()]
    assert {line["mailing_id"] for line in lines} == {ids["mailing"]}
    assert any(line.get("message_id") == ids["message"] for line in lines)


# --- `notiflow logs` on stdin ------------------------------------------------------------------


def _line(at: str, event: str, **fields: Any) -> str:
    return json.dumps({"timestamp": at, "level": "info", "logger": "t", "event": event, **fields})


STORY = [
    _line("2026-12-06T10:00:03.000Z", "send attempt", mailing_id=1, message_id=10, client_id=7),
    _line("2026-12-06T10:00:01.000Z", "api write", mailing_id=1, action="mailing.create"),
    "Traceback (most recent call last): not JSON",
    _line("2026-12-06T10:00:02.000Z", "audience written", mailing_id=1, messages=2),
    _line("2026-12-06T10:00:03.500Z", "send attempt", mailing_id=1, message_id=11, client_id=8),
    _line("2026-12-06T10:00:02.500Z", "mailing started", mailing_id=2),
    "[1, 2, 3]",
    _line("2026-12-06T10:00:04.000Z", "mailing completed", mailing_id=1, sent=2),
    _line("2026-12-06T10:00:00.000Z", "api write", client_id=7, action="client.create"),
    "",
]


def test_logs_filters_stdin_in_time_order_and_counts_what_is_not_json(tmp_path: Path) -> None:
    text = "\n".join(STORY) + "\n"
    result = _notiflow("logs", "--message", "10", "--json", stdin=text, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["event"] for line in result.stdout.splitlines()] == [
        "api write",
        "audience written",
        "send attempt",
        "mailing completed",
    ]
    assert result.stdout.splitlines()[2] == STORY[0]  # as it was written
    assert result.stderr.strip() == "skipped 2 lines that are not JSON"

    readable = _notiflow("logs", "--client", "7", stdin=text, cwd=tmp_path)
    out = readable.stdout.splitlines()
    assert [line.split("] ", 1)[1].split("  ")[0] for line in out] == [
        "api write",
        "api write",
        "audience written",
        "send attempt",
        "mailing completed",
    ]
    assert out[0].startswith("2026-12-06T10:00:00.000Z")
    assert "action=client.create" in out[0]

    nothing = _notiflow("logs", "--mailing", "3", stdin=text, cwd=tmp_path)
    assert nothing.returncode == 1
    assert "no line about mailing 3" in nothing.stderr
    for wrong in ([], ["--mailing", "1", "--message", "10"]):
        refused = _notiflow("logs", *wrong, stdin=text, cwd=tmp_path)
        assert refused.returncode == 2
        assert refused.stderr == "give exactly one of --mailing, --message, --client\n"


def test_read_story_of_each_subject() -> None:
    mailing = read_story(STORY, Subject.mailing, 1)
    assert [line.fields["event"] for line in mailing.lines] == [
        "api write",
        "audience written",
        "send attempt",
        "send attempt",
        "mailing completed",
    ]
    assert mailing.skipped == 2
    other = read_story(STORY, Subject.message, 11)
    assert [line.fields.get("message_id") for line in other.lines] == [None, None, 11, None]
    assert read_story(STORY, Subject.client, 9).lines == []
    # A line without a timestamp keeps its place after the line before it.
    undated = read_story(
        [STORY[1], json.dumps({"event": "x", "mailing_id": 1})], Subject.mailing, 1
    )
    assert [line.fields["event"] for line in undated.lines] == ["api write", "x"]
