"""The README documents what the code does."""

from __future__ import annotations

from pathlib import Path

from notiflow.config import Settings

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    for name in Settings.model_fields:
        assert f"`NOTIFLOW_{name.upper()}`" in README, (
            f"NOTIFLOW_{name.upper()} is not in the README"
        )


def test_quick_start_is_two_commands() -> None:
    assert "make run" in README
    assert "make test" in README
