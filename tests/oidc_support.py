"""An OpenID Connect provider for the tests: ``oidc-provider-mock`` (PyPI) on 127.0.0.1, once per
test session, in a process of its own. A pytest plugin (``pytest_plugins`` in tests/conftest.py).

The provider signs in whoever is named on its authorization page (the field ``sub``): a person
made with :meth:`OidcProvider.add_user` has the claims given there, another gets ``email = sub``.
It requires a nonce in every authorization request, accepts any client id, secret and redirect
URI, and lists an ``end_session_endpoint``. :func:`authorize` walks its page with real HTTP as a
browser would, up to the redirect back to Notiflow, which the tests follow by hand.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.browser_support import free_port

START_TIMEOUT_S = 60


@dataclass
class OidcProvider:
    url: str  # the issuer
    process: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def add_user(self, sub: str, **claims: object) -> str:
        """A person the provider knows (``email``, ``email_verified``, ``name`` …); returns sub."""
        response = httpx.put(f"{self.url}/users/{sub}", json=claims, timeout=10)
        assert response.status_code == 204, response.text
        return sub

    def discovery(self) -> dict[str, object]:
        response = httpx.get(f"{self.url}/.well-known/openid-configuration", timeout=10)
        response.raise_for_status()
        document: dict[str, object] = response.json()
        return document


async def authorize(authorization_url: str, sub: str, *, deny: bool = False) -> str:
    """Sign ``sub`` in on the provider's authorization page (or press Deny); returns where the
    provider sends the browser back (the redirect URI with code and state, or an error)."""
    async with httpx.AsyncClient(timeout=10) as browser:
        page = await browser.get(authorization_url)
        assert page.status_code == 200, page.text
        form = {"action": "deny"} if deny else {"sub": sub}
        answer = await browser.post(authorization_url, data=form)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def _wait_until_up(provider: OidcProvider) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if provider.process.poll() is not None:
            pytest.fail(f"oidc-provider-mock exited:\n{provider.output()}")
        try:
            provider.discovery()
            return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"oidc-provider-mock did not answer in {START_TIMEOUT_S} s")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """``oidc-provider-mock`` on 127.0.0.1 on a free port, for the whole session."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("oidc-provider") / "provider.log"
    env = {**os.environ, "NO_COLOR": "1"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "oidc_provider_mock", "--require-nonce"),
                *("--host", "127.0.0.1", "--port", str(port)),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    provider = OidcProvider(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    try:
        _wait_until_up(provider)
        yield provider
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
