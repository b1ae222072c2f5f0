"""The hero names and the email rules the service relies on."""

from __future__ import annotations

import pytest

from m3o.services.customers.emails import is_valid_email, normalise_email
from m3o.services.customers.names import HERO_NAMES, random_hero_name


def test_hero_names_are_non_empty_and_distinct() -> None:
    assert len(HERO_NAMES) >= 50
    assert all(name.strip() == name and name for name in HERO_NAMES)
    assert len(set(HERO_NAMES)) == len(HERO_NAMES)


def test_random_hero_name_comes_from_the_list() -> None:
    assert {random_hero_name() for _ in range(50)} <= set(HERO_NAMES)


def test_normalise_email_trims_and_lower_cases() -> None:
    assert normalise_email("  Ann.Smith+x@Example.COM\n") == "ann.smith+x@example.com"


@pytest.mark.parametrize(
    ("email", "valid"),
    [
        ("ann@example.com", True),
        ("ann.smith+tag@mail.example.co.uk", True),
        ("ann", False),
        ("ann@example", False),
        ("ann@exa mple.com", False),
        ("ann@example.com.", False),
        ("a@b@example.com", False),
    ],
)
def test_is_valid_email(email: str, valid: bool) -> None:
    assert is_valid_email(email) is valid
