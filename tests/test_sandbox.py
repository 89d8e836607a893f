"""The sandbox provider, seen from a client: it must misbehave exactly as configured."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from notiflow.sandbox.server import FaultConfig, Sandbox
from tests.delivery_support import wait_until


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[Sandbox, str]]:
    server = Sandbox(FaultConfig(token="secret", hang_seconds=5), seed=3)
    url = await server.start("127.0.0.1", 0)
    yield server, url
    await server.stop()


def _body(message_id: int) -> dict[str, object]:
    return {"id": message_id, "phone": 79001234567, "text": "hi"}


AUTH = {"Authorization": "Bearer secret"}


async def test_accepts_a_good_request(sandbox: tuple[Sandbox, str]) -> None:
    server, url = sandbox
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{url}/42", json=_body(42), headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"code": 0, "message": "OK"}
    assert server.accepted_ids() == [42]
    assert server.received[0].phone == 79001234567


@pytest.mark.parametrize(
    ("headers", "body", "path_id", "status"),
    [
        ({}, _body(1), 1, 401),
        ({"Authorization": "Bearer nope"}, _body(1), 1, 401),
        (AUTH, _body(1), 2, 400),  # the id in the path must match the body
        (AUTH, {"id": 1, "phone": "79001234567", "text": "hi"}, 1, 400),
        (AUTH, {"id": 1, "text": "hi"}, 1, 400),
    ],
)
async def test_refuses_bad_requests(
    sandbox: tuple[Sandbox, str], headers: dict[str, str], body: object, path_id: int, status: int
) -> None:
    server, url = sandbox
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{url}/{path_id}", json=body, headers=headers)
    assert response.status_code == status
    assert server.accepted_ids() == []


async def test_fault_shares_are_honoured(sandbox: tuple[Sandbox, str]) -> None:
    server, url = sandbox
    server.config.update({"error_rate": 0.3, "garbage_rate": 0.2, "reject_rate": 0.1})
    statuses: Counter[str] = Counter()
    async with httpx.AsyncClient() as client:
        for i in range(1, 401):
            response = await client.post(f"{url}/{i}", json=_body(i), headers=AUTH)
            if response.status_code == 200 and response.content == b'{"code": 0, "message": "OK"}':
                statuses["ok"] += 1
            elif response.status_code == 200:
                statuses["garbage"] += 1
            else:
                statuses[str(response.status_code)[0] + "xx"] += 1
    assert 80 <= statuses["5xx"] <= 160
    assert 50 <= statuses["garbage"] <= 110
    assert 20 <= statuses["4xx"] <= 65
    assert statuses["ok"] == server.stats()["accepted"]


async def test_hang_drop_and_throttle(sandbox: tuple[Sandbox, str]) -> None:
    server, url = sandbox
    async with httpx.AsyncClient() as client:
        server.config.update({"hang_rate": 1.0})
        with pytest.raises(httpx.ReadTimeout):
            await client.post(f"{url}/1", json=_body(1), headers=AUTH, timeout=0.3)
        server.config.update({"hang_rate": 0.0, "drop_rate": 1.0})
        with pytest.raises(httpx.TransportError):
            await client.post(f"{url}/2", json=_body(2), headers=AUTH)
        server.config.update({"drop_rate": 0.0, "throttle_rate": 1.0, "retry_after_seconds": 3})
        response = await client.post(f"{url}/3", json=_body(3), headers=AUTH)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "3"
    assert [e.outcome for e in server.received] == ["hang", "drop", "throttle"]
    # The client gave up on the hang and was cut off on the drop: neither got an answer.
    assert [e.answered for e in server.received] == [False, False, True]


async def test_latency(sandbox: tuple[Sandbox, str]) -> None:
    server, url = sandbox
    server.config.update({"latency_ms": 200})
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(f"{url}/1", json=_body(1), headers=AUTH, timeout=0.05)
        response = await client.post(f"{url}/2", json=_body(2), headers=AUTH, timeout=2)
        assert response.status_code == 200
        # A wrong token is answered after the same delay, as a real provider would.
        with pytest.raises(httpx.ReadTimeout):
            await client.post(f"{url}/3", json=_body(3), timeout=0.05)
    await wait_until(lambda: None not in [e.answered for e in server.received])
    # Message 1 was taken but the client had given up: the answer never reached it.
    assert [(e.id, e.outcome, e.answered) for e in server.received] == [
        (1, "ok", False),
        (2, "ok", True),
        (None, "unauthorized", False),
    ]


async def test_outage_refuses_connections_then_recovers(sandbox: tuple[Sandbox, str]) -> None:
    _server, url = sandbox
    base = url.removesuffix("/v1/send")
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{base}/_sandbox/outage", json={"seconds": 0.5})
        assert response.json() == {"outage_seconds": 0.5}
        with pytest.raises(httpx.TransportError):  # a kept-alive connection is cut
            await client.post(f"{url}/1", json=_body(1), headers=AUTH)
        async with httpx.AsyncClient() as fresh:  # a new one is refused
            with pytest.raises(httpx.ConnectError):
                await fresh.post(f"{url}/1", json=_body(1), headers=AUTH)
        await asyncio.sleep(0.6)
        response = await client.post(f"{url}/2", json=_body(2), headers=AUTH)
        assert response.status_code == 200


async def test_control_endpoints(sandbox: tuple[Sandbox, str]) -> None:
    server, url = sandbox
    base = url.removesuffix("/v1/send")
    async with httpx.AsyncClient(base_url=base) as client:
        changed = await client.put("/_sandbox/config", json={"error_rate": 0.5, "latency_ms": 1})
        assert changed.json()["error_rate"] == 0.5
        for bad in ({"error_rate": 2}, {"nonsense": 1}, {"error_rate": 0.6, "drop_rate": 0.6}, [1]):
            response = await client.put("/_sandbox/config", json=bad)
            assert response.status_code == 400, bad
        assert (await client.get("/_sandbox/config")).json()["error_rate"] == 0.5
        await client.put("/_sandbox/config", json={"error_rate": 0})
        await client.post("/v1/send/5", json=_body(5), headers=AUTH)
        log = (await client.get("/_sandbox/log")).json()
        assert [(e["id"], e["outcome"]) for e in log] == [(5, "ok")]
        assert (await client.get("/_sandbox/stats")).json()["accepted_unique"] == 1
        assert (await client.delete("/_sandbox/log")).status_code == 204
        assert server.received == []


async def test_control_endpoints_never_show_the_token(sandbox: tuple[Sandbox, str]) -> None:
    _server, url = sandbox
    base = url.removesuffix("/v1/send")
    async with httpx.AsyncClient(base_url=base) as client:
        shown = await client.get("/_sandbox/config")
        assert shown.json()["token_set"] is True
        assert "token" not in shown.json()
        assert "secret" not in shown.text
        changed = await client.put("/_sandbox/config", json={"token": "other-secret"})
        assert changed.status_code == 200
        assert changed.json()["token_set"] is True
        assert "other-secret" not in changed.text
        assert "token" not in (await client.get("/_sandbox/config")).json()
        # The token set by PUT is the one required from then on.
        refused = await client.post("/v1/send/1", json=_body(1), headers=AUTH)
        assert refused.status_code == 401
        accepted = await client.post(
            "/v1/send/1", json=_body(1), headers={"Authorization": "Bearer other-secret"}
        )
        assert accepted.status_code == 200
        cleared = await client.put("/_sandbox/config", json={"token": ""})
        assert cleared.json()["token_set"] is False


def test_command_line(tmp_path: Path) -> None:
    env = {**os.environ, "NOTIFLOW_LOG_LEVEL": "WARNING"}
    process = subprocess.Popen(
        [sys.executable, "-m", "notiflow", "sandbox", "--port", "0", "--error-rate", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"(http://\S+/v1/send)", line)
        assert match, line
        base = match.group(1).removesuffix("/v1/send")
        config = httpx.get(f"{base}/_sandbox/config").json()
        assert config["error_rate"] == 0.5
        response = httpx.post(f"{match.group(1)}/9", json=_body(9))
        assert response.status_code in (200, 500, 502, 503)
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        if process.stdout:
            process.stdout.close()
    bad = subprocess.run(
        [sys.executable, "-m", "notiflow", "sandbox", "--error-rate", "0.7", "--drop-rate", "0.7"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert bad.returncode == 2
    assert "add up" in bad.stderr
