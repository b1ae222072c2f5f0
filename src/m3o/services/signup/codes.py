"""Verification codes and reset tokens: how they are made, stored and checked.

Only hashes are stored. A verification code has 26**8 (about 2 * 10**11) values and lives
five minutes with five tries, so it is hashed with SHA-256 over a random per-code salt; a
reset token carries 256 random bits, so a plain SHA-256 both hides it and finds its row.
Comparisons run in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

__all__ = [
    "CODE_ALPHABET",
    "CODE_LENGTH",
    "code_matches",
    "hash_code",
    "hash_reset_token",
    "new_code",
    "new_reset_token",
    "new_salt",
    "random_secret",
]

CODE_LENGTH = 8
CODE_ALPHABET = string.ascii_uppercase
"""Codes are upper-case letters; what the customer types is upper-cased before checking."""


def new_code() -> str:
    """A fresh verification code from the operating system's CSPRNG."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def new_salt() -> str:
    return secrets.token_hex(16)


def hash_code(code: str, salt: str) -> str:
    """The stored form of ``code`` (as typed: trimmed and upper-cased first)."""
    typed = code.strip().upper()
    return hashlib.sha256(f"{salt}:{typed}".encode()).hexdigest()


def code_matches(code: str, salt: str, stored_hash: str) -> bool:
    """Whether ``code`` is the one stored as ``stored_hash``, compared in constant time."""
    return hmac.compare_digest(hash_code(code, salt), stored_hash)


def new_reset_token() -> str:
    """A fresh, URL-safe password-reset token (256 random bits)."""
    return secrets.token_urlsafe(32)


def hash_reset_token(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


def random_secret() -> str:
    """A password nobody knows, for passwordless accounts."""
    return secrets.token_urlsafe(32)
