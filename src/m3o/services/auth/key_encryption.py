"""Encryption at rest of the private signing keys in ``auth_keys``.

A private key is stored as ``aesgcm1:<kek id>:<base64url(nonce || ciphertext)>``: AES-256-GCM
under the key-encryption key (KEK, ``auth.key_encryption_key``), a random 96-bit nonce, and
the signing key's ``kid`` as associated data (a sealed key cannot be moved to another row).
The KEK id is a short hash of the KEK, so a start with the wrong KEK can say which one the
rows need without revealing anything about it.

Rows written by older versions hold the PEM in clear; they still load, and
:meth:`KeyRing.ensure <m3o.services.auth.signing_keys.KeyRing.ensure>` seals them under the current
KEK. Previous KEKs (``auth.previous_key_encryption_keys``) only decrypt: rows sealed under
one are sealed again under the current KEK at start, which is how a KEK is rotated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from m3o.runtime.config import ConfigError

__all__ = [
    "KEK_BYTES",
    "KeyEncryption",
    "generate_kek",
    "kek_id",
    "parse_kek",
    "parse_kek_list",
]

KEK_BYTES = 32
_SCHEME = "aesgcm1"
_NONCE_BYTES = 12
_PEM_START = "-----BEGIN"
_CURRENT_PATH = "auth.key_encryption_key"


def parse_kek(text: str) -> bytes:
    """A KEK from its text: 32 bytes in base64 (standard or URL-safe, padding optional).

    Raises ValueError with a message that never contains the text.
    """
    cleaned = text.strip()
    padded = cleaned + "=" * (-len(cleaned) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEK_BYTES:
        raise ValueError("must be 32 random bytes in base64 (openssl rand -base64 32)")
    return raw


def parse_kek_list(text: str) -> tuple[bytes, ...]:
    """Comma-separated KEKs (empty items ignored)."""
    return tuple(parse_kek(item) for item in text.split(",") if item.strip())


def generate_kek() -> str:
    """A new random KEK, as the text config and the key file hold."""
    return base64.b64encode(secrets.token_bytes(KEK_BYTES)).decode()


def kek_id(kek: bytes) -> str:
    """A short public name of a KEK (8 hex digits of a hash of it)."""
    return hashlib.sha256(b"m3o auth key-encryption key\0" + kek).hexdigest()[:8]


class KeyEncryption:
    """Seals and opens private keys with the current KEK and any previous ones.

    With no current KEK, keys are stored in clear (and rows sealed earlier cannot be read:
    opening them raises :class:`ConfigError`, never anything that would make a new key).
    """

    def __init__(self, current: bytes | None = None, previous: Sequence[bytes] = ()) -> None:
        self._current = current
        self._known: dict[str, bytes] = {kek_id(k): k for k in previous}
        if current is not None:
            self._known[kek_id(current)] = current

    @property
    def enabled(self) -> bool:
        return self._current is not None

    def seal(self, kid: str, pem: str) -> str:
        """What to store for the private key ``pem`` of key ``kid``."""
        if self._current is None:
            return pem
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = AESGCM(self._current).encrypt(nonce, pem.encode(), kid.encode())
        body = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{_SCHEME}:{kek_id(self._current)}:{body}"

    def open(self, kid: str, stored: str) -> str:
        """The PEM of the private key stored as ``stored`` for key ``kid``.

        Raises :class:`ConfigError` (one line, naming ``auth.key_encryption_key``) when the
        row is sealed under a KEK that is not configured, or does not open with it.
        """
        if stored.startswith(_PEM_START):
            return stored
        scheme, _, rest = stored.partition(":")
        needed, _, body = rest.partition(":")
        if scheme != _SCHEME or not body:
            raise ConfigError(
                f"{_CURRENT_PATH}: signing key {kid} is stored in an unknown format",
                _CURRENT_PATH,
            )
        kek = self._known.get(needed)
        if kek is None:
            raise ConfigError(_missing_message(needed, configured=bool(self._known)), _CURRENT_PATH)
        try:
            raw = base64.urlsafe_b64decode(body.encode())
            nonce, sealed = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
            return AESGCM(kek).decrypt(nonce, sealed, kid.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise ConfigError(
                f"{_CURRENT_PATH}: signing key {kid} does not decrypt with key-encryption key "
                f"{needed} (the row is damaged or was altered)",
                _CURRENT_PATH,
            ) from None

    def needs_sealing(self, stored: str) -> bool:
        """True when ``stored`` should be sealed again under the current KEK."""
        if self._current is None:
            return False
        return not stored.startswith(f"{_SCHEME}:{kek_id(self._current)}:")

    @staticmethod
    def is_sealed(stored: str) -> bool:
        return not stored.startswith(_PEM_START)

    @staticmethod
    def sealed_with(stored: str) -> str | None:
        """The KEK id a stored key is sealed under; None when it is in clear."""
        if stored.startswith(_PEM_START):
            return None
        return stored.partition(":")[2].partition(":")[0] or None


def _missing_message(needed: str, *, configured: bool) -> str:
    if not configured:
        return (
            f"{_CURRENT_PATH}: the signing keys are encrypted with key-encryption key "
            f"{needed}, but none is configured"
        )
    return (
        f"{_CURRENT_PATH}: the signing keys are encrypted with key-encryption key {needed}, "
        f"which is neither the configured key nor one of auth.previous_key_encryption_keys"
    )
