"""The short-lived token an upstream receives instead of the caller's key.

Each key has an auth account (id = the key's id, type ``apikey``, its scopes, metadata
``apikey_owner`` = the project). The gateway asks auth to ``Grant`` that account a token of
``ttl`` (the gateway's own service account may), and reuses it for the key's calls until
80% of its life has passed; then one call renews it while the others keep the old one.
Upstreams verify it with auth's public keys like any other token.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from m3o.gateway.v1.paths import ERROR_ID
from m3o.runtime.auth.tokens import ServiceTokenSource
from m3o.runtime.errors import M3OError, Unavailable
from m3o.runtime.logging import get_logger
from m3o.services.auth.proto import auth_pb2 as auth_pb
from m3o.services.auth.proto.client import AuthService

__all__ = ["DEFAULT_TTL", "TOKEN_UNAVAILABLE", "GrantTokens", "UpstreamTokens"]

_log = get_logger(__name__)

DEFAULT_TTL = timedelta(minutes=15)
MAX_KEYS = 10_000
"""Keys whose token a process keeps; the least recently used go first."""
TOKEN_UNAVAILABLE = "Error processing request"  # noqa: S105 - a message, not a secret


class UpstreamTokens(Protocol):
    async def token(self, key_id: str) -> str:
        """A valid access token of the key's account. Raises an error kind when there is
        none to be had."""
        ...


class GrantTokens:
    """:class:`UpstreamTokens` through ``auth.Grant``, cached per key."""

    def __init__(
        self, auth: AuthService, *, ttl: timedelta = DEFAULT_TTL, max_keys: int = MAX_KEYS
    ) -> None:
        self._auth = auth
        self._seconds = int(ttl.total_seconds())
        self._max_keys = max_keys
        self._sources: OrderedDict[str, ServiceTokenSource] = OrderedDict()

    async def token(self, key_id: str) -> str:
        source = self._sources.get(key_id)
        if source is None:
            source = ServiceTokenSource(self._fetcher(key_id))
            self._sources[key_id] = source
            if len(self._sources) > self._max_keys:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(key_id)
        try:
            return await source.token()
        except (M3OError, TimeoutError) as exc:
            self._sources.pop(key_id, None)
            _log.error("v1.upstream_token_failed", key_id=key_id, error=str(exc))
            raise Unavailable(ERROR_ID, TOKEN_UNAVAILABLE) from None

    def forget(self, key_id: str) -> None:
        self._sources.pop(key_id, None)

    def _fetcher(self, key_id: str) -> Callable[[], Awaitable[tuple[str, datetime]]]:
        async def fetch() -> tuple[str, datetime]:
            response = await self._auth.grant(
                auth_pb.GrantRequest(id=key_id, token_expiry=self._seconds)
            )
            return response.token.access_token, datetime.fromtimestamp(response.token.expiry, UTC)

        return fetch
