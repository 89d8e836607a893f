"""Fetch the vendored front-end assets again from npm (``make vendor``).

Reads ``src/notiflow/static/vendor/vendor.toml``; for each package there, ``npm pack``s the exact
version (npm checks the tarball against the registry's integrity hash), checks each listed file
against its ``sha256`` in the manifest (the bytes that were reviewed; a new version prints its
new ones to put there), copies them into ``src/notiflow/static/vendor/<name>-<version>/``,
removes the package's other versions and rewrites ``src/notiflow/static/vendor/README.md``.
Run twice, it changes nothing: ``git status`` after it shows whether the committed files are
exactly the published ones.

Needs ``npm`` (only here: Notiflow never needs Node to run or to be installed).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path
from typing import Any

VENDOR = Path(__file__).resolve().parent.parent / "src" / "notiflow" / "static" / "vendor"
MANIFEST = VENDOR / "vendor.toml"

README_HEAD = """\
# Vendored front-end assets

Notiflow serves these files itself, under `/static/vendor/`, so that its pages (Swagger UI at
`/docs`, ReDoc at `/redoc`) load nothing from a CDN and work on a machine without internet
access. Each directory holds files copied unchanged from one version of an npm package, with the
package's licence files.

This file is written by `make vendor` (`scripts/vendor.py`) from `vendor.toml`; edit that one.

| package | version | licence | used by | files |
|---|---|---|---|---|
"""

README_TAIL = """
## Updating a package, or adding one

1. Change its `version` (or add a `[[package]]`, with the `files` to copy, paths as inside the
   npm package) in `vendor.toml`; `npm view <name> version` shows the newest version.
2. Run `make vendor`. It runs `npm pack <name>@<version>` (npm checks the download against the
   registry's integrity hash) and checks every file against its `sha256` in `vendor.toml`: for
   a new version it stops and prints the new ones; review the files, put the hashes under the
   package's `[package.sha256]` and run it again. It then copies the listed files into
   `<name>-<version>/`, removes the package's other versions and rewrites this file. The tests
   check the committed files against the same hashes.
3. Run the browser tests (`.venv/bin/pytest -m browser`): they load `/docs` and `/redoc` in
   Chromium and fail if a page breaks or requests anything outside 127.0.0.1.

Code finds a file with `notiflow.web.static.vendored("<name>", "<file>")`, which reads the
version from `vendor.toml`, so a new version needs no code change.
"""


def _manifest() -> list[dict[str, Any]]:
    packages: list[dict[str, Any]] = tomllib.loads(MANIFEST.read_text())["package"]
    return packages


def _fetch(package: dict[str, Any], work: Path) -> Path:
    """Download and unpack ``name@version``; the directory of its files."""
    spec = f"{package['name']}@{package['version']}"
    result = subprocess.run(
        ["npm", "pack", "--json", "--pack-destination", str(work), spec],
        check=True,
        capture_output=True,
        text=True,
    )
    packed = json.loads(result.stdout)[0]
    if packed["version"] != package["version"]:
        raise SystemExit(f"npm packed {packed['name']}@{packed['version']}, not {spec}")
    with tarfile.open(work / packed["filename"]) as archive:
        archive.extractall(work / "unpacked", filter="data")
    return work / "unpacked" / "package"


def _check_hashes(package: dict[str, Any], source: Path) -> None:
    """Refuse files whose sha256 is not the manifest's (or that the manifest has none for)."""
    pinned: dict[str, str] = package.get("sha256", {})
    found = {
        Path(file).name: hashlib.sha256((source / file).read_bytes()).hexdigest()
        for file in package["files"]
    }
    if found != pinned:
        lines = "\n".join(f'"{name}" = "{digest}"' for name, digest in found.items())
        raise SystemExit(
            f"{package['name']}@{package['version']}: the files' sha256 are not those of "
            f"vendor.toml. If this version is the one you mean (a new one, reviewed), put "
            f"these under its [package.sha256]:\n{lines}"
        )


def vendor(package: dict[str, Any]) -> None:
    name, version = package["name"], package["version"]
    target = VENDOR / f"{name}-{version}"
    with tempfile.TemporaryDirectory() as tmp:
        source = _fetch(package, Path(tmp))
        _check_hashes(package, source)
        if target.exists():
            shutil.rmtree(target)
        target.mkdir()
        for file in package["files"]:
            shutil.copyfile(source / file, target / Path(file).name)
    for old in VENDOR.glob(f"{name}-*"):
        if old != target and old.is_dir() and old.name.removeprefix(f"{name}-")[:1].isdigit():
            shutil.rmtree(old)
    print(f"{name}-{version}: {len(package['files'])} files")


def readme(packages: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"| [{p['name']}]({p['homepage']}) | {p['version']} | {p['license']} | {p['used_by']} | "
        + ", ".join(f"`{p['name']}-{p['version']}/{Path(f).name}`" for f in p["files"])
        + " |\n"
        for p in packages
    )
    return README_HEAD + rows + README_TAIL


def main() -> None:
    if shutil.which("npm") is None:
        sys.exit("npm is needed to fetch the vendored packages (apt-get install npm)")
    packages = _manifest()
    for package in packages:
        vendor(package)
    (VENDOR / "README.md").write_text(readme(packages))


if __name__ == "__main__":
    main()
