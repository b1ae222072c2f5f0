"""Email addresses: parsing what callers send, and masking what the logs show."""

from __future__ import annotations

from dataclasses import dataclass
from email.headerregistry import Address as HeaderAddress
from email.headerregistry import AddressHeader, HeaderRegistry
from email.utils import formataddr
from typing import cast

from m3o.runtime.email_address import MAX_EMAIL_LENGTH, is_valid_email

__all__ = ["MAX_ADDRESS_LENGTH", "Address", "parse_address"]

MAX_ADDRESS_LENGTH = MAX_EMAIL_LENGTH
"""The longest address SMTP can carry (RFC 5321 path limit)."""

_HEADERS = HeaderRegistry()


@dataclass(frozen=True, slots=True)
class Address:
    """A mailbox: an optional display name and a normalised (lower-cased) address."""

    email: str
    name: str = ""

    def __str__(self) -> str:
        return formataddr((self.name, self.email)) if self.name else self.email

    def header(self) -> HeaderAddress:
        """The address as the ``email`` package writes it into a header."""
        local, _, domain = self.email.rpartition("@")
        return HeaderAddress(display_name=self.name, username=local, domain=domain)


def parse_address(text: str) -> Address | None:
    """``ann@example.com`` or ``Ann <ann@example.com>``; None when it is not one mailbox.

    Line breaks are refused anywhere (they would let a caller add headers), and so is
    anything the ``email`` package's strict parser reports a defect in. The address itself
    must pass the platform's one rule (:mod:`m3o.runtime.email_address`), so this service
    sends to exactly the addresses the others accept; the display name may be any text
    without control characters.
    """
    text = text.strip(" ")  # a trailing CR LF or tab is refused, not trimmed
    if not text or not text.isprintable():
        return None
    try:
        parsed = _HEADERS("To", text)
    except (ValueError, IndexError):
        return None
    header = cast(AddressHeader, parsed)
    groups = header.groups
    if parsed.defects or len(groups) != 1 or groups[0].display_name is not None:
        return None
    if len(header.addresses) != 1:
        return None
    [found] = header.addresses
    email = found.addr_spec.lower()
    if not is_valid_email(email):
        return None
    if email not in text.lower():
        # The parser dropped comments or folding whitespace: not the address we were given.
        return None
    return Address(email=email, name=found.display_name.strip())
