"""Email addresses: the one form every service stores and compares, and who may sign up.

Every service that takes an address from outside (customers, signup, oauth, emails) checks
it here, so they all accept exactly the same addresses.

The accepted syntax is a strict, ASCII-only subset of RFC 5321 / 5322, checked without any
DNS lookup:

- trimmed of surrounding spaces and lower-cased (:func:`normalise_email`); a control
  character anywhere, at either end included (a trailing ``\r\n`` or tab), is refused;
- at most 254 characters (the SMTP path limit), the local part at most 64;
- local part: a *dot-atom* (letters, digits and ``! # $ % & ' * + / = ? ^ _ ` { | } ~ -``,
  dots only between other characters); quoted local parts (``"a b"@x.com``) are refused;
- domain: two or more labels of letters, digits and hyphens (1 to 63 characters, no hyphen
  at either end), the last not all digits; IP literals (``[1.2.3.4]``) are refused;
- nothing else: no spaces, control characters (NUL included), angle brackets, comments
  or non-ASCII characters (so no look-alike letters; an international domain is written
  in its ``xn--`` form).

Why not a library: what is left after refusing quoted parts, literals and SMTPUTF8 is the
short grammar above, and it needs no dependency and no configuration to stay strict.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable

__all__ = [
    "MAX_EMAIL_LENGTH",
    "MAX_LOCAL_LENGTH",
    "InvalidEmail",
    "SignupPolicy",
    "is_valid_email",
    "mask_email",
    "normalise_email",
    "parse_email",
]

MAX_EMAIL_LENGTH = 254
"""The longest address SMTP can carry (RFC 5321 path limit)."""
MAX_LOCAL_LENGTH = 64
"""The longest local part (RFC 5321)."""

_ATEXT = frozenset(string.ascii_lowercase + string.digits + "!#$%&'*+/=?^_`{|}~-")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class InvalidEmail(ValueError):
    """An address that is not accepted; ``reason`` says why, in words for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def detail(self) -> str:
        """The BadRequest detail services answer with."""
        return f"Invalid email: {self.reason}"


def normalise_email(email: str) -> str:
    """Trimmed and lower-cased: the form every lookup and every stored row uses.

    This does not validate: it is for looking up what was stored (a login, a read).
    """
    return email.strip().lower()


def parse_email(email: str) -> str:
    """The normalised form of ``email``, or :class:`InvalidEmail` saying what is wrong.

    An empty (or blank) address is refused too; callers that answer ``Missing email``
    check for that first.
    """
    if not email.strip(" ").isprintable():
        # Before trimming: strip() would remove a trailing CR LF or tab as whitespace.
        raise InvalidEmail("spaces and control characters are not accepted")
    address = normalise_email(email)
    if not address:
        raise InvalidEmail("it is empty")
    if len(address) > MAX_EMAIL_LENGTH:
        raise InvalidEmail(f"it is longer than {MAX_EMAIL_LENGTH} characters")
    if not address.isascii():
        raise InvalidEmail("only ASCII characters are accepted")
    if not address.isprintable() or any(c.isspace() for c in address):
        raise InvalidEmail("spaces and control characters are not accepted")
    if address.count("@") != 1:
        raise InvalidEmail("it must be one address such as name@example.com")
    local, _, domain = address.partition("@")
    _check_local(local)
    _check_domain(domain)
    return address


def is_valid_email(email: str) -> bool:
    """Whether :func:`parse_email` accepts ``email``."""
    try:
        parse_email(email)
    except InvalidEmail:
        return False
    return True


def _check_local(local: str) -> None:
    if not local:
        raise InvalidEmail("the name before the @ is missing")
    if len(local) > MAX_LOCAL_LENGTH:
        raise InvalidEmail(f"the name before the @ is longer than {MAX_LOCAL_LENGTH} characters")
    if local.startswith('"') or local.endswith('"'):
        raise InvalidEmail("quoted names are not accepted")
    if any(c not in _ATEXT and c != "." for c in local):
        raise InvalidEmail("the name before the @ holds a character that is not accepted")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise InvalidEmail("dots in the name before the @ must be between other characters")


def _check_domain(domain: str) -> None:
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidEmail("the domain must be a name such as example.com")
    if labels[-1].isdigit():
        raise InvalidEmail("the domain must be a name, not an IP address")


class SignupPolicy:
    r"""Which addresses may sign up (by any method) and which get onboarding.

    ``block_list`` and ``allow_list`` are regular expressions matched as the reference's
    Go ``regexp.MatchString`` did: found **anywhere** in the address (``@spam\.com`` blocks
    ``x@spam.com``; anchor with ``^...$`` to match the whole address), case-sensitively
    unless the pattern says ``(?i)``. A pattern is tried on the address as given (trimmed,
    what the reference matched) and on its normalised lower-case form: an address may sign
    up when neither form contains a blocked pattern and, if the allow list is not empty,
    either form contains an allowed one. An empty entry matches nothing (in Go it matched
    every address; so an allow list of only empty entries lets nobody in).
    ``engagement_block_list`` holds addresses (compared case-insensitively) that get no
    onboarding (promo credit, welcome email).
    """

    def __init__(
        self,
        *,
        block_list: Iterable[str] = (),
        allow_list: Iterable[str] = (),
        engagement_block_list: Iterable[str] = (),
    ) -> None:
        self._blocked = [re.compile(p) for p in block_list if p]
        allowed = list(allow_list)
        self._allow_all = not allowed
        self._allowed = [re.compile(p) for p in allowed if p]
        self._no_engagement = frozenset(
            normalise_email(e) for e in engagement_block_list if e.strip()
        )

    def may_sign_up(self, email: str, *, given: str = "") -> bool:
        """Whether the normalised ``email`` (and ``given``, the address as the caller wrote
        it, when known) passes both lists."""
        forms = (email, given.strip()) if given.strip() not in ("", email) else (email,)
        if any(p.search(form) for p in self._blocked for form in forms):
            return False
        return self._allow_all or any(p.search(form) for p in self._allowed for form in forms)

    def gets_onboarding(self, email: str) -> bool:
        """Whether ``email`` gets the promo credit and the welcome email."""
        return normalise_email(email) not in self._no_engagement


def mask_email(email: str) -> str:
    """``ann@example.com`` -> ``a***@example.com``: enough to tell emails apart in logs."""
    local, at, domain = email.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"
