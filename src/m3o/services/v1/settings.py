"""The v1 service's settings, taken once from config section ``v1``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from m3o.runtime.config import Config

__all__ = [
    "BAN_MESSAGE",
    "BLOCK_MESSAGE",
    "MAX_DESCRIPTION_LENGTH",
    "MAX_EXPIRES_IN",
    "MAX_SCOPES",
    "KeySettings",
    "settings_from",
]

MAX_DESCRIPTION_LENGTH = 500
MAX_SCOPES = 100
MAX_EXPIRES_IN = timedelta(days=3650)
"""The longest lifetime a key may be given (a key may also never expire)."""
BAN_MESSAGE = "User has been banned"
"""Status message of the keys blocked because their customer was banned."""
BLOCK_MESSAGE = "This key has been blocked"
"""Status message of a key an admin blocked without saying why."""


@dataclass(frozen=True, slots=True, repr=False)
class KeySettings:
    """How the v1 service hashes keys: everything its handler is configured with (the
    public API's own settings are ``m3o.gateway.v1.PublicAPISettings``)."""

    pepper: bytes = b""
    """HMAC pepper of key hashes (config ``v1.key_pepper``); never logged."""

    def __repr__(self) -> str:
        return "KeySettings(pepper=[redacted])"


def settings_from(config: Config) -> KeySettings:
    return KeySettings(pepper=config.v1.key_pepper.get_secret_value().encode("utf-8"))
