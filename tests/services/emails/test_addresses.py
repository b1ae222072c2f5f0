"""Addresses: what Send accepts as a mailbox, and how logs show one."""

from __future__ import annotations

import pytest

from m3o.runtime.email_address import mask_email
from m3o.services.emails.addresses import Address, parse_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ann@example.com", Address("ann@example.com")),
        ("  Ann@Example.COM ", Address("ann@example.com")),
        ("<ann@example.com>", Address("ann@example.com")),
        ("Ann <ann@example.com>", Address("ann@example.com", "Ann")),
        ('"Ann, B" <ann@example.com>', Address("ann@example.com", "Ann, B")),
        ("M3O <noreply@m3o.com>", Address("noreply@m3o.com", "M3O")),
        ("Zoë <zoe@example.com>", Address("zoe@example.com", "Zoë")),
    ],
)
def test_one_mailbox_is_parsed_and_normalised(text: str, expected: Address) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ann",
        "ann@example",
        "ann@@example.com",
        "ann @example.com",
        "ann(comment)@example.com",
        "a@example.com, b@example.com",
        "group: a@example.com;",
        "Ann <ann@example.com> trailing",
        "ann@example.com\nBcc: eve@example.com",
        "ann@example.com\r\n",
        "\tann@example.com",
        "Ann <ann@example.com>\n",
        "a" * 65 + "@example.com",
        "x" * 250 + "@example.com",
        '"a"@example.com',
        '"a b"@example.com',
        'Ann <"a"@example.com>',
        "<script>@x.com",
        "a\x00b@example.com",
        "Ann\x00 <ann@example.com>",
        "ann@ex\u0430mple.com",  # a Cyrillic "a"
        "ann@[127.0.0.1]",
    ],
)
def test_anything_but_one_mailbox_is_refused(text: str) -> None:
    assert parse_address(text) is None


def test_an_address_prints_as_a_header_value() -> None:
    assert str(Address("ann@example.com")) == "ann@example.com"
    assert str(Address("ann@example.com", "Ann, B")) == '"Ann, B" <ann@example.com>'


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("ann@example.com", "a***@example.com"),
        ("a@example.com", "a***@example.com"),
        ("not-an-address", "***"),
    ],
)
def test_logs_show_addresses_partly_masked(email: str, masked: str) -> None:
    assert mask_email(email) == masked
