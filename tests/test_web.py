"""/docs, /redoc and / from vendored assets; the vendored files themselves and their packaging.
(In a real browser: tests/test_web_browser.py.)"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from notiflow.app import create_app
from notiflow.config import Settings
from notiflow.metrics.http import UNMATCHED
from notiflow.web.static import vendored

ROOT = Path(__file__).parent.parent
VENDOR = ROOT / "src" / "notiflow" / "static" / "vendor"
MANIFEST: list[dict[str, Any]] = tomllib.loads((VENDOR / "vendor.toml").read_text())["package"]


@pytest.fixture
async def web(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app, asked without a token (the pages need no database: SQLite is enough)."""
    shutil.copy(sqlite_template, tmp_path / "notiflow.db")
    app = create_app(
        Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/notiflow.db", _env_file=None)
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://notiflow.test"
    ) as client:
        yield client
    await app.state.db_engine.dispose()


_LINK = re.compile(r"""(?:src|href)="([^"]*)"|url: '([^']*)'""")


def _linked(html: str) -> list[str]:
    """Every URL a page names in src= or href=, or as a script's url: option."""
    return [match.group(1) or match.group(2) for match in _LINK.finditer(html)]


async def test_docs_loads_swagger_ui_from_this_server(web: httpx.AsyncClient) -> None:
    response = await web.get("/docs")
    assert response.status_code == 200
    assert "content-security-policy" in response.headers
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert sorted(_linked(response.text)) == sorted(
        [
            "/openapi.json",
            "/static/vendor/swagger-ui-dist-5.36.0/swagger-ui.css",
            "/static/vendor/swagger-ui-dist-5.36.0/favicon-32x32.png",
            "/static/vendor/swagger-ui-dist-5.36.0/swagger-ui-bundle.js",
        ]
    )
    assert "cdn." not in response.text
    assert "window.location.origin + '/docs/oauth2-redirect'" in response.text
    assert '"validatorUrl": null' in response.text


async def test_redoc_loads_from_this_server_without_google_fonts(web: httpx.AsyncClient) -> None:
    response = await web.get("/redoc")
    assert response.status_code == 200
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert "fonts.googleapis.com" not in response.text
    assert 'spec-url="/openapi.json"' in response.text
    assert sorted(_linked(response.text)) == sorted(
        [
            "/static/vendor/swagger-ui-dist-5.36.0/favicon-32x32.png",
            "/static/vendor/redoc-2.5.4/redoc.standalone.js",
        ]
    )


async def test_swagger_ui_oauth2_redirect_is_served(web: httpx.AsyncClient) -> None:
    response = await web.get("/docs/oauth2-redirect")
    assert response.status_code == 200
    assert "oauth2" in response.text
    assert "<script" in response.text


async def test_the_root_redirects_to_the_admin_ui(web: httpx.AsyncClient) -> None:
    response = await web.get("/")
    assert response.status_code == 307
    assert response.headers["location"] == "/ui/"


async def test_pages_behind_a_path_prefix_link_under_it(tmp_path: Path) -> None:
    """Behind a proxy that serves Notiflow under /notiflow (uvicorn --root-path), every link
    stays under the prefix."""
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/n.db", _env_file=None)
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, root_path="/notiflow")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/")).headers["location"] == "/notiflow/ui/"
        for page in ("/docs", "/redoc"):
            links = _linked((await client.get(page)).text)
            assert links, page
            assert all(link.startswith("/notiflow/") for link in links), (page, links)
            for link in links:  # as the proxy passes them on (uvicorn puts the prefix back)
                assert (await client.get(link)).status_code == 200, link
    await app.state.db_engine.dispose()


@pytest.mark.parametrize(
    ("package", "file"),
    [(p["name"], Path(f).name) for p in MANIFEST for f in p["files"]],
)
async def test_every_vendored_file_is_served(
    web: httpx.AsyncClient, package: str, file: str
) -> None:
    path = vendored(package, file)
    response = await web.get(path)
    assert response.status_code == 200
    assert response.content == (VENDOR / path.removeprefix("/static/vendor/")).read_bytes()
    if file.endswith(".js"):
        assert response.headers["content-type"].startswith("text/javascript")
    if file.endswith(".css"):
        assert response.headers["content-type"].startswith("text/css")


def test_a_file_that_is_not_vendored_is_refused() -> None:
    with pytest.raises(LookupError):
        vendored("swagger-ui-dist", "swagger-ui.js")
    with pytest.raises(LookupError):
        vendored("left-pad", "index.js")


def test_the_vendored_packages_are_what_the_manifest_and_readme_say() -> None:
    readme = (VENDOR / "README.md").read_text()
    expected = set()
    for package in MANIFEST:
        directory = f"{package['name']}-{package['version']}"
        expected.add(directory)
        files = {Path(f).name for f in package["files"]}
        assert {p.name for p in (VENDOR / directory).iterdir()} == files
        # The bytes are the reviewed ones `make vendor` checks the npm package against.
        assert set(package["sha256"]) == files, f"{package['name']}: sha256 of every file"
        for name, digest in package["sha256"].items():
            content = (VENDOR / directory / name).read_bytes()
            assert hashlib.sha256(content).hexdigest() == digest, f"{directory}/{name} changed"
        assert "LICENSE" in files, f"{package['name']} ships without its licence"
        row = f"| {package['version']} | {package['license']} |"
        assert row in readme, f"{package['name']} {package['version']} is not in the README"
    assert {p.name for p in VENDOR.iterdir() if p.is_dir()} == expected
    project_readme = (ROOT / "README.md").read_text()
    for package in MANIFEST:
        assert f"`{package['name']}` {package['version']}, {package['license']}" in project_readme


async def test_static_files_are_counted_under_one_route(web: httpx.AsyncClient) -> None:
    await web.get(vendored("redoc", "LICENSE"))
    await web.get("/static/no/such/file")
    metrics = (await web.get("/metrics")).text
    assert 'route="/static/{path}",status="200"' in metrics
    assert 'route="/static/{path}",status="404"' in metrics
    assert f'route="{UNMATCHED}"' not in metrics


@pytest.mark.slow
def test_the_wheel_ships_the_vendored_files_and_serves_them(tmp_path: Path) -> None:
    """Build the wheel, unpack it, and serve /docs and every vendored file from the unpacked
    package in a fresh interpreter (not from this source tree)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp_path, ROOT],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("notiflow-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "installed")
    for package in MANIFEST:
        for file in package["files"]:
            name = Path(file).name
            assert f"notiflow/static/vendor/{package['name']}-{package['version']}/{name}" in names
    script = f"""
import httpx, notiflow
from pathlib import Path
from notiflow.app import create_app
from notiflow.config import Settings
from notiflow.web.static import vendored

assert Path(notiflow.__file__).is_relative_to({str(tmp_path / "installed")!r}), notiflow.__file__
app = create_app(Settings(_env_file=None, database_url="sqlite+aiosqlite:///{tmp_path}/x.db"))

async def main():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/docs")).status_code == 200
        for package, file in {[(p["name"], Path(f).name) for p in MANIFEST for f in p["files"]]!r}:
            response = await c.get(vendored(package, file))
            assert response.status_code == 200, (package, file, response.status_code)
    await app.state.db_engine.dispose()

import asyncio
asyncio.run(main())
print("served from", notiflow.__file__)
"""
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "installed")}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "served from " + str(tmp_path / "installed") in result.stdout
