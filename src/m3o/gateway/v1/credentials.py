"""Where a caller puts its API key, and the in-process cache of key records.

A key comes as ``Authorization: Bearer <key>``, as HTTP Basic with the key as the password
(``curl -u x:KEY``) or, with an empty password, as the user name (``curl -u KEY:``), or
(for browsers opening a websocket, which cannot set headers) as the
``Sec-WebSocket-Protocol`` value. Our keys (``m3o_...``) and keys imported from M3O (base64
of a UUID) are both accepted, each looked up by its own hash (see
``sources.V1KeyDirectory``). Anything else, an unknown, revoked or expired key:
Unauthorized ``{"id": "v1", "detail": "Unauthorized"}``.

Records are cached for ``ttl`` (config ``v1.key_cache_ttl``, 1 s), so revoking or blocking
a key takes effect within that on every gateway process (a busy key's record is read again
in the background after half of it, so that no call waits for the read); unknown keys are
cached as well, so a flood of made-up keys costs at most two lookups each per ``ttl``. A
key that cannot be checked now (counter store or v1 service unreachable) is Unavailable
(503). The cache is indexed by a digest of the key, never the key itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import Callable, Mapping
from datetime import timedelta

from m3o.gateway.v1.lookups import CachedLookups
from m3o.gateway.v1.paths import ERROR_ID
from m3o.gateway.v1.ports import ApiKey, KeyDirectory
from m3o.runtime.errors import M3OError, Unauthorized, Unavailable
from m3o.runtime.logging import get_logger

__all__ = ["UNAUTHORIZED", "KeyCache", "key_from_headers", "websocket_protocol"]

_log = get_logger(__name__)

UNAUTHORIZED = "Unauthorized"
KEYS_UNAVAILABLE = "Service unavailable, please try again"
MAX_CACHED = 100_000
"""Records a process keeps; past that the oldest half is dropped."""


def _basic_key(value: str) -> str | None:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    if not colon:
        return None
    return password or user


def key_from_headers(headers: Mapping[str, str], *, websocket: bool = False) -> str | None:
    """The API key the request carries, None when it carries none."""
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.strip().partition(" ")
    key: str | None = None
    if scheme.lower() == "bearer":
        key = value.strip()
    elif scheme.lower() == "basic":
        key = _basic_key(value)
    elif not authorization and websocket:
        key = websocket_protocol(headers)
    return key or None


def websocket_protocol(headers: Mapping[str, str]) -> str:
    """The first subprotocol a websocket client offers (where browsers put the key)."""
    return headers.get("sec-websocket-protocol", "").split(",", 1)[0].strip()


def _digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode("utf-8"), digest_size=20).digest()


class KeyCache:
    """Finds key records through a :class:`KeyDirectory`, remembering them for ``ttl``
    (one lookup per key at a time, a busy key's record renewed in the background before it
    lapses: :class:`~m3o.gateway.v1.lookups.CachedLookups`)."""

    def __init__(
        self,
        directory: KeyDirectory,
        *,
        ttl: timedelta = timedelta(seconds=1),
        max_entries: int = MAX_CACHED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._directory = directory
        self._records: CachedLookups[bytes, str, ApiKey | None] = CachedLookups(
            self._look_up, ttl=ttl.total_seconds(), max_entries=max_entries, clock=clock
        )

    def __len__(self) -> int:
        """Records (and unknown keys) remembered now."""
        return len(self._records)

    async def authenticate(self, api_key: str | None) -> ApiKey:
        """The record of ``api_key``; Unauthorized when there is none."""
        if not api_key:
            raise Unauthorized(ERROR_ID, UNAUTHORIZED)
        record = await self.find(api_key)
        if record is None:
            raise Unauthorized(ERROR_ID, UNAUTHORIZED)
        return record

    async def find(self, api_key: str) -> ApiKey | None:
        return await self._records.get(_digest(api_key), api_key)

    async def _look_up(self, api_key: str) -> ApiKey | None:
        try:
            return await self._directory.find(api_key)
        except M3OError as exc:
            # Whatever the directory's trouble (counter store, v1 service), the caller
            # learns only that the key cannot be checked now.
            _log.warning("v1.key_lookup_failed", error_id=exc.id, error=exc.detail)
            raise Unavailable(ERROR_ID, KEYS_UNAVAILABLE) from None
