"""The ``state`` parameter: a signed, expiring token that ties a login to its start.

A state is ``v1.<provider>.<nonce>.<issued>.<signature>``: the provider it was issued for,
a random nonce, the issue time (unix seconds) and an HMAC-SHA256 over the rest. Nothing is
stored: any process holding the same key can check it, so every process must share the
key (config ``oauth.state_secret``). A state from another provider, with a bad signature,
or older than its lifetime is refused with Forbidden.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta

from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.errors import Forbidden

__all__ = ["DEFAULT_STATE_TTL", "INVALID_STATE", "STATE_EXPIRED", "StateSigner"]

DEFAULT_STATE_TTL = timedelta(minutes=10)
INVALID_STATE = "Invalid state"
STATE_EXPIRED = "The login took too long, please try again"

_VERSION = "v1"
_PARTS = 5
# Processes' clocks differ a little: a state "issued" this far in the future still counts.
_CLOCK_SKEW = 60


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class StateSigner:
    """Issues and checks states. ``key`` is the HMAC key; ``ttl`` how long a state lives."""

    def __init__(
        self, key: bytes, *, ttl: timedelta = DEFAULT_STATE_TTL, clock: Clock = utc_now
    ) -> None:
        if not key:
            raise ValueError("the state key must not be empty")
        self._key = key
        self._ttl = int(ttl.total_seconds())
        self._clock = clock

    def issue(self, provider: str) -> str:
        """A fresh state for a login with ``provider`` (``google`` or ``github``)."""
        issued = int(self._clock().timestamp())
        body = f"{_VERSION}.{provider}.{secrets.token_urlsafe(16)}.{issued}"
        return f"{body}.{self._sign(body)}"

    def check(self, state: str, provider: str, endpoint: str) -> None:
        """Pass a valid, unexpired state issued for ``provider``; else Forbidden."""
        parts = state.split(".")
        if len(parts) != _PARTS or parts[0] != _VERSION:
            raise Forbidden(endpoint, INVALID_STATE)
        body, signature = state.rsplit(".", 1)
        if not hmac.compare_digest(self._sign(body), signature):
            raise Forbidden(endpoint, INVALID_STATE)
        # Signed by us, so the fields are ours; still, check rather than trust the shape.
        if parts[1] != provider or not parts[3].isdigit():
            raise Forbidden(endpoint, INVALID_STATE)
        age = int(self._clock().timestamp()) - int(parts[3])
        if age > self._ttl or age < -_CLOCK_SKEW:
            raise Forbidden(endpoint, STATE_EXPIRED)

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode("utf-8"), hashlib.sha256).digest())
