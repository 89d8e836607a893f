"""Static files shipped inside the package (``src/notiflow/static``), served at ``/static``.

Front-end libraries are vendored from npm under ``static/vendor/<name>-<version>/``, as listed in
``static/vendor/vendor.toml`` (``make vendor`` fetches them again); :func:`vendored` gives the
URL path of one of their files, so code never spells a version.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib.resources import files

from starlette.staticfiles import StaticFiles

STATIC_PATH = "/static"
STATIC_NAME = "static"


def static_files() -> StaticFiles:
    """The ASGI app serving ``notiflow/static``, found through the installed package."""
    return StaticFiles(packages=[("notiflow", "static")])


@cache
def _versions() -> dict[str, tuple[str, frozenset[str]]]:
    manifest = files("notiflow").joinpath("static", "vendor", "vendor.toml").read_text()
    return {
        package["name"]: (
            package["version"],
            frozenset(file.rsplit("/", 1)[-1] for file in package["files"]),
        )
        for package in tomllib.loads(manifest)["package"]
    }


def vendored(package: str, file: str) -> str:
    """The URL path (below the app's root path) of a vendored file:
    ``vendored("redoc", "LICENSE")`` is ``/static/vendor/redoc-2.5.4/LICENSE``.

    A package or file missing from ``vendor.toml`` is a ``LookupError``: a page never links to a
    file that is not shipped."""
    version, shipped = _versions()[package]
    if file not in shipped:
        raise LookupError(f"{file} is not vendored from {package} (see static/vendor/vendor.toml)")
    return f"{STATIC_PATH}/vendor/{package}-{version}/{file}"
