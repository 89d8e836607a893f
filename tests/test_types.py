"""The shared field types, as pure functions."""

from __future__ import annotations

import re

import pytest

from notiflow.core.types import PHONE_PATTERN, normalize_phone

FORMS = [
    ("79001234567", "79001234567"),
    ("+79001234567", "79001234567"),
    ("+7 900 123-45-67", "79001234567"),
    ("+7 (900) 123-45-67", "79001234567"),
    ("8 900 123 45 67", "79001234567"),
    ("8 (900) 123-45-67", "79001234567"),
    ("(8900)1234567", "79001234567"),
    ("\t7-900-123-45-67\n", "79001234567"),
    ("+ 7 900 1234567", "79001234567"),
    ("7900123456", None),
    ("(900) 123-45-67", None),
    ("+89001234567", None),
    ("++79001234567", None),
    ("+7 900 123 45 678", None),
    ("7 900 123 45 6x", None),
    ("7.900.123.45.67", None),
    ("٧٩٠٠١٢٣٤٥٦٧", None),  # Arabic-Indic digits are digits to Python, not to us
    ("", None),
]


@pytest.mark.parametrize(("text", "stored"), FORMS)
def test_normalize_phone(text: str, stored: str | None) -> None:
    if stored is None:
        with pytest.raises(ValueError, match="11 digits starting with 7"):
            normalize_phone(text)
    else:
        assert normalize_phone(text) == stored


@pytest.mark.parametrize(("text", "stored"), FORMS)
def test_openapi_pattern_says_the_same(text: str, stored: str | None) -> None:
    assert (re.match(PHONE_PATTERN, text) is not None) == (stored is not None)


@pytest.mark.parametrize(
    ("number", "stored"),
    [(79001234567, "79001234567"), (89001234567, "79001234567"), (-79001234567, None), (7, None)],
)
def test_integer_phones(number: int, stored: str | None) -> None:
    if stored is None:
        with pytest.raises(ValueError, match="11 digits"):
            normalize_phone(number)
    else:
        assert normalize_phone(number) == stored
