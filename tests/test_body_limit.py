"""Request body limits: refused with 413 in the error shape, before the body is read or buffered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from notiflow.app import create_app
from notiflow.config import Settings
from tests.conftest import TOKEN
from tests.helpers import serving

REQUEST_MAX = 16 * 1024
IMPORT_MAX = 64 * 1024
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json"}
CSV = {"Content-Type": "text/csv"}


@pytest.fixture
async def limited(db_url: str) -> AsyncIterator[Any]:
    settings = Settings(
        database_url=db_url,
        api_tokens=[TOKEN],
        request_max_bytes=REQUEST_MAX,
        import_max_bytes=IMPORT_MAX,
        _env_file=None,
    )
    app = create_app(settings)
    yield app
    await app.state.db_engine.dispose()


@pytest.fixture
async def api(limited: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=limited)
    async with httpx.AsyncClient(transport=transport, base_url="http://notiflow.test") as client:
        yield client


def _client_json(size: int) -> bytes:
    """A valid client whose JSON body is ``size`` bytes long."""
    body = {"phone": "79001234567", "tag": ""}
    padding = size - len(json.dumps(body).encode())
    return json.dumps({**body, "tag": "t" * padding}).encode()


def _csv(size: int) -> bytes:
    header = b"phone\n"
    rows = (size - len(header)) // 12
    body = header + b"".join(b"7900%07d\n" % i for i in range(rows))
    return body + b"\n" * (size - len(body))


async def _chunks(body: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _assert_too_large(response: httpx.Response, limit: int, variable: str) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["errors"] == []
    assert f"larger than {limit} bytes" in body["detail"], body
    assert f"raise {variable}" in body["detail"], body


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_every_endpoint_refuses_a_body_over_the_request_limit(
    api: httpx.AsyncClient, chunked: bool
) -> None:
    body = _client_json(REQUEST_MAX + 1)
    content: bytes | AsyncIterator[bytes] = _chunks(body) if chunked else body
    response = await api.post("/api/v1/clients", content=content, headers={**AUTH, **JSON})
    _assert_too_large(response, REQUEST_MAX, "NOTIFLOW_REQUEST_MAX_BYTES")
    assert (await api.get("/api/v1/clients", headers=AUTH)).json()["total"] == 0
    # One byte less is a body like any other.
    fits = await api.post("/api/v1/clients", content=body[:-1], headers={**AUTH, **JSON})
    assert fits.status_code == 422, fits.text  # the tag is too long: it was read and validated


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_the_import_has_its_own_limit(api: httpx.AsyncClient, chunked: bool) -> None:
    fits = _csv(IMPORT_MAX)  # four times the request limit
    content: bytes | AsyncIterator[bytes] = _chunks(fits) if chunked else fits
    response = await api.post("/api/v1/clients/import", content=content, headers={**AUTH, **CSV})
    assert response.status_code == 200, response.text
    assert response.json()["created"] == (IMPORT_MAX - 6) // 12
    body = _csv(IMPORT_MAX + 1)
    content = _chunks(body) if chunked else body
    response = await api.post("/api/v1/clients/import", content=content, headers={**AUTH, **CSV})
    _assert_too_large(response, IMPORT_MAX, "NOTIFLOW_IMPORT_MAX_BYTES")


@pytest.mark.parametrize("path", ["/api/v1/clients", "/api/v1/clients/import", "/health"])
async def test_the_limit_comes_before_the_token(api: httpx.AsyncClient, path: str) -> None:
    response = await api.post(path, content=b"x" * (IMPORT_MAX + 1), headers=JSON)
    limit, variable = (
        (IMPORT_MAX, "NOTIFLOW_IMPORT_MAX_BYTES")
        if path.endswith("/import")
        else (REQUEST_MAX, "NOTIFLOW_REQUEST_MAX_BYTES")
    )
    _assert_too_large(response, limit, variable)


def test_the_limit_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).request_max_bytes == 1024 * 1024
    monkeypatch.setenv("NOTIFLOW_REQUEST_MAX_BYTES", "2048")
    assert Settings(_env_file=None).request_max_bytes == 2048
    monkeypatch.setenv("NOTIFLOW_REQUEST_MAX_BYTES", "1023")
    with pytest.raises(ValueError, match="request_max_bytes"):
        Settings(_env_file=None)


# --- over real HTTP: the body is refused before it arrives ---------------------------------------


@asynccontextmanager
async def _connection(
    port: int,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()


async def _answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of the answer, which must come without the rest of the request."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
    assert headers["content-type"] == "application/json"
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), timeout=10)
    return int(lines[0].split()[1]), json.loads(body)


@pytest.mark.parametrize("path", ["/api/v1/clients", "/api/v1/clients/import"])
async def test_a_huge_declared_body_is_refused_before_it_is_sent(limited: Any, path: str) -> None:
    """No token, `Content-Length: 100 MB` and not a byte of body: the answer is 413 at once."""
    async with serving(limited) as port, _connection(port) as (reader, writer):
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\n"
            f"Content-Length: {100 * 1024 * 1024}\r\n\r\n".encode()
        )
        await writer.drain()
        status, body = await _answer(reader)
    assert status == 413
    assert "MAX_BYTES" in body["detail"]
    assert body["errors"] == []


@pytest.mark.parametrize(
    ("path", "limit", "variable"),
    [
        ("/api/v1/clients", REQUEST_MAX, "NOTIFLOW_REQUEST_MAX_BYTES"),
        ("/api/v1/clients/import", IMPORT_MAX, "NOTIFLOW_IMPORT_MAX_BYTES"),
    ],
)
async def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(
    limited: Any, path: str, limit: int, variable: str
) -> None:
    """The body never ends (no last chunk), yet the answer comes once it is over the limit."""
    async with serving(limited) as port, _connection(port) as (reader, writer):
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"x" * 1024
        for _ in range(limit // len(chunk) + 1):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
        status, body = await _answer(reader)
    assert status == 413
    assert f"larger than {limit} bytes" in body["detail"]
    assert f"raise {variable}" in body["detail"]
