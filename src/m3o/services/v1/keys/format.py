"""API keys: their format, their checksum and the keyed hash that is all we store.

A key is ``m3o_`` + 43 base62 characters (32 random bytes) + a 6-character base62 CRC32
of everything before it, 53 characters in all::

    m3o_3xQ8...Zk1   (prefix) (random part) (checksum)

The prefix lets secret scanners recognise a leaked key; the checksum rejects a mistyped or
truncated key before any lookup (CRC32 catches every single-character change). Only
HMAC-SHA256 of the whole key with a server-side pepper (config ``v1.key_pepper``) is
stored: a copy of the database alone cannot be turned back into working keys.

Keys imported from M3O keep working as they are: there a key was the standard base64 of a
random UUID's text (48 characters, :func:`is_legacy_form`) and the plain hex SHA-256 of it
was stored (:func:`legacy_hash`). A presented key of neither shape cannot exist.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string
import uuid
import zlib

__all__ = [
    "CHECKSUM_LENGTH",
    "KEY_LENGTH",
    "PREFIX",
    "RANDOM_BYTES",
    "hash_key",
    "hash_matches",
    "is_key_hash",
    "is_legacy_form",
    "is_well_formed",
    "legacy_hash",
    "new_key",
]

PREFIX = "m3o_"
RANDOM_BYTES = 32
_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
_BASE = len(_ALPHABET)
_BODY_LENGTH = 43
"""Base62 digits of 32 bytes: 62**43 > 2**256."""
CHECKSUM_LENGTH = 6
"""Base62 digits of a CRC32: 62**6 > 2**32."""
KEY_LENGTH = len(PREFIX) + _BODY_LENGTH + CHECKSUM_LENGTH
_DIGITS = frozenset(_ALPHABET)
_HASH = re.compile(r"[0-9a-f]{64}")
_LEGACY_LENGTH = 48
"""base64 of a UUID's 36 characters."""
_LEGACY_ALPHABET = frozenset(string.ascii_letters + string.digits + "+/")


def _base62(value: int, width: int) -> str:
    digits: list[str] = []
    while value:
        value, digit = divmod(value, _BASE)
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits)).rjust(width, _ALPHABET[0])


def _checksum(head: str) -> str:
    return _base62(zlib.crc32(head.encode("ascii")), CHECKSUM_LENGTH)


def new_key() -> str:
    """A fresh key from the operating system's CSPRNG."""
    body = _base62(int.from_bytes(secrets.token_bytes(RANDOM_BYTES), "big"), _BODY_LENGTH)
    head = PREFIX + body
    return head + _checksum(head)


def is_well_formed(key: str) -> bool:
    """Whether ``key`` has our prefix, length, alphabet and a correct checksum.

    A false answer means the key cannot exist; no lookup is needed to refuse it.
    """
    if len(key) != KEY_LENGTH or not key.startswith(PREFIX):
        return False
    rest = key[len(PREFIX) :]
    if not _DIGITS.issuperset(rest):
        return False
    head, checksum = key[:-CHECKSUM_LENGTH], key[-CHECKSUM_LENGTH:]
    return hmac.compare_digest(_checksum(head), checksum)


def hash_key(key: str, pepper: bytes) -> str:
    """What is stored of a key: hex HMAC-SHA256 of it, keyed with the pepper."""
    return hmac.new(pepper, key.encode("utf-8"), hashlib.sha256).hexdigest()


def hash_matches(key_hash: str, stored_hash: str) -> bool:
    """Compare two key hashes in constant time."""
    return hmac.compare_digest(
        key_hash.encode("ascii", "replace"), stored_hash.encode("ascii", "replace")
    )


def is_key_hash(value: str) -> bool:
    """Whether ``value`` looks like :func:`hash_key`'s output (64 lower-case hex digits)."""
    return _HASH.fullmatch(value) is not None


def is_legacy_form(key: str) -> bool:
    """Whether ``key`` has the shape of an M3O key: standard base64 of a UUID's text."""
    if len(key) != _LEGACY_LENGTH or not _LEGACY_ALPHABET.issuperset(key):
        return False
    try:
        text = base64.b64decode(key).decode("ascii")
        return text == str(uuid.UUID(text))  # the canonical lower-case form Go wrote
    except (UnicodeDecodeError, ValueError):
        return False


def legacy_hash(key: str) -> str:
    """What M3O stored of a key: its plain hex SHA-256 (no pepper)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
