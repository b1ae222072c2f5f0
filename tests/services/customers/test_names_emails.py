"""The hero names (the email rules are the runtime's: tests/runtime/test_email_address.py)."""

from __future__ import annotations

from m3o.services.customers.names import HERO_NAMES, random_hero_name


def test_hero_names_are_non_empty_and_distinct() -> None:
    assert len(HERO_NAMES) >= 50
    assert all(name.strip() == name and name for name in HERO_NAMES)
    assert len(set(HERO_NAMES)) == len(HERO_NAMES)


def test_random_hero_name_comes_from_the_list() -> None:
    assert {random_hero_name() for _ in range(50)} <= set(HERO_NAMES)
