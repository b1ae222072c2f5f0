"""The auth service's settings (built from config section ``auth`` by ``service.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

__all__ = ["DEFAULT_MAX_TOKEN_TTL", "AuthSettings"]

DEFAULT_MAX_TOKEN_TTL = timedelta(days=90)


@dataclass(frozen=True, slots=True)
class AuthSettings:
    access_token_ttl: timedelta = timedelta(hours=1)
    """Lifetime of an access token when the Token request names none."""

    max_token_ttl: timedelta = DEFAULT_MAX_TOKEN_TTL
    """Longest access token lifetime a Token request may ask for. A signing key retired by
    a rotation stays published this long, so every token it signed can still be checked."""

    refresh_token_ttl: timedelta = timedelta(days=90)
    """Lifetime of a refresh token (each rotation issues a new one with a new lifetime)."""

    service_secret: str = field(default="", repr=False)
    """Secret of every service account; processes get their token with it."""

    service_names: tuple[str, ...] = ()
    """Services that get a service account (id and name = the service name) at start."""

    account_failure_limit: int = 5
    """Failed logins per account within ``failure_window`` before further tries are refused."""

    address_failure_limit: int = 20
    """Failed logins per client address within ``failure_window`` before refusal."""

    failure_window: timedelta = timedelta(minutes=15)
    """How long failed logins are remembered."""

    key_encryption_key: bytes | None = field(default=None, repr=False)
    """Key (32 bytes) that seals the private signing keys at rest; None: stored in clear."""

    previous_key_encryption_keys: tuple[bytes, ...] = field(default=(), repr=False)
    """Older key-encryption keys: they only open keys, which are then sealed again."""

    key_reload: timedelta = timedelta(minutes=1)
    """How often a process re-reads which key signs (another replica may have rotated)."""
