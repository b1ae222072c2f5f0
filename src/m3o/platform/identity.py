"""How a process checks callers and proves its own identity, through the auth service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from m3o.runtime.auth.access import CachedRules, RuleSpec
from m3o.runtime.auth.tokens import JwtAuthenticator, ServiceTokenSource
from m3o.runtime.counters import CounterStore
from m3o.runtime.rpc import Transport
from m3o.services.auth.proto import auth_pb2 as auth_pb
from m3o.services.auth.proto.client import AuthClient
from m3o.services.auth.rules import rules_from_pb

__all__ = ["Identity"]


class Identity:
    """The authenticator, access rules and service token sources of one process."""

    def __init__(self, transport: Transport, counters: CounterStore, service_secret: str) -> None:
        self._auth = AuthClient(transport)  # anonymous: public endpoints only
        self._secret = service_secret
        self._sources: dict[str, ServiceTokenSource] = {}
        # The rules say who may call what: only admins and services may read them.
        self._as_platform = AuthClient(transport, self.token_source("platform"))
        self.authenticator = JwtAuthenticator(self._jwks, counters)
        self.rules = CachedRules(self._rules)

    async def _jwks(self) -> str:
        return (await self._auth.public_keys(auth_pb.PublicKeysRequest())).jwks

    async def _rules(self) -> Sequence[RuleSpec]:
        return rules_from_pb(await self._as_platform.list_rules(auth_pb.ListRulesRequest()))

    def token_source(self, account: str) -> ServiceTokenSource:
        """The token source of the service account ``account``, one per process."""
        source = self._sources.get(account)
        if source is None:

            async def fetch() -> tuple[str, datetime]:
                response = await self._auth.token(
                    auth_pb.TokenRequest(id=account, secret=self._secret)
                )
                return response.token.access_token, datetime.fromtimestamp(
                    response.token.expiry, UTC
                )

            source = ServiceTokenSource(fetch)
            self._sources[account] = source
        return source
