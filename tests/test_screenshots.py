"""docs/screenshots holds exactly the pages scripts/screenshots.py shoots, and the README shows
only screenshots that are there."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "docs" / "screenshots"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "screenshots", ROOT / "scripts" / "screenshots.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_png_is_one_page_of_the_script() -> None:
    names = [shot.name for shot in _script().PAGES]
    assert len(names) == len(set(names)), names
    assert sorted(path.stem for path in SCREENSHOTS.glob("*.png")) == sorted(names)


def test_the_readme_shows_screenshots_that_exist() -> None:
    shown = re.findall(r"\]\((docs/screenshots/[^)\s]+\.png)\)", (ROOT / "README.md").read_text())
    assert shown, "the README shows no screenshot"
    for path in shown:
        assert (ROOT / path).is_file(), path
