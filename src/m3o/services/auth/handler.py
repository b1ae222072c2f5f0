"""The auth service: accounts, sessions and tokens, access rules, the blocklist.

:class:`Auth` implements ``auth.Auth``, one method per RPC, each handing over to the part
that owns the concern:

- ``accounts.py``: Generate, Delete, List, ChangeSecret, service accounts;
- ``sessions.py``: Token, Grant, Inspect, Revoke, RevokeSessions;
- ``rules.py``: CreateRule, DeleteRule, ListRules, Verify, default rules;
- ``blocklist.py``: Block, Unblock;
- ``keys.py``: the signing keys and PublicKeys' key set.

Who may call: Generate, Delete, RevokeSessions, Block, Unblock, List, CreateRule and
DeleteRule need an admin or a service; ChangeSecret an admin, a service or the account
itself with its old secret; Grant a service; Inspect and Revoke any account; Verify
checks the caller, whoever it is; Token, PublicKeys and ListRules are public.
"""

from __future__ import annotations

from collections.abc import Callable

from argon2 import PasswordHasher

from m3o.runtime.auth import CallContext
from m3o.runtime.auth.tokens import JwtAuthenticator
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.counters import CounterStore
from m3o.runtime.store import SessionFactory
from m3o.services.auth.accounts import Accounts
from m3o.services.auth.blocklist import Blocklist
from m3o.services.auth.credentials import CredentialCheck
from m3o.services.auth.key_encryption import KeyEncryption
from m3o.services.auth.passwords import Passwords
from m3o.services.auth.proto import auth_pb2 as pb
from m3o.services.auth.revocation import CounterMirror
from m3o.services.auth.rules import Rules
from m3o.services.auth.sessions import Sessions
from m3o.services.auth.settings import AuthSettings
from m3o.services.auth.signing_keys import KeyRing

__all__ = ["Auth"]


class Auth:
    """Implements ``auth.Auth``.

    ``hasher`` is the Argon2id hasher (argon2-cffi's defaults when None); ``clock`` gives
    the current UTC time; ``on_rules_changed`` is called after this process changes a rule
    (to invalidate the process's cached rules).
    """

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        counters: CounterStore,
        settings: AuthSettings | None = None,
        clock: Clock = utc_now,
        hasher: PasswordHasher | None = None,
        on_rules_changed: Callable[[], None] | None = None,
    ) -> None:
        self._settings = settings = settings or AuthSettings()
        passwords = Passwords(hasher)
        self._keys = KeyRing(
            sessions,
            clock=clock,
            publish_retired=settings.max_token_ttl,
            reload_every=settings.key_reload,
            encryption=KeyEncryption(
                settings.key_encryption_key, settings.previous_key_encryption_keys
            ),
        )
        self._mirror = mirror = CounterMirror(sessions, counters, clock)
        credentials = CredentialCheck(
            passwords,
            counters,
            account_limit=settings.account_failure_limit,
            address_limit=settings.address_failure_limit,
            window=settings.failure_window,
        )
        self._accounts = Accounts(
            sessions=sessions,
            passwords=passwords,
            credentials=credentials,
            mirror=mirror,
            clock=clock,
        )
        self._sessions = Sessions(
            sessions=sessions,
            keys=self._keys,
            passwords=passwords,
            credentials=credentials,
            mirror=mirror,
            authenticator=JwtAuthenticator(self._keys.jwks, counters, clock=clock),
            settings=settings,
            clock=clock,
        )
        self._rules = Rules(sessions=sessions, on_change=on_rules_changed)
        self._blocklist = Blocklist(sessions=sessions, mirror=mirror, clock=clock)

    # Start-up and upkeep (service.py runs these).

    async def ensure_signing_key(self) -> None:
        await self._keys.ensure()

    async def seed_default_rules(self) -> None:
        await self._rules.seed()

    async def ensure_service_accounts(self) -> None:
        await self._accounts.ensure_service_accounts(
            self._settings.service_names, self._settings.service_secret
        )

    async def restore_counters(self) -> None:
        """Copy the blocklist and revoked sessions into the counter store."""
        await self._mirror.restore()

    async def restore_counters_if_lost(self) -> None:
        await self._mirror.restore_if_lost()

    async def purge_expired_sessions(self) -> None:
        await self._sessions.purge_expired()

    async def rotate_signing_key(self) -> str:
        """Sign with a new key from now on; returns its key id."""
        return await self._keys.rotate()

    # Accounts.

    async def generate(self, request: pb.GenerateRequest, ctx: CallContext) -> pb.GenerateResponse:
        return await self._accounts.generate(request, ctx)

    async def delete(self, request: pb.DeleteRequest, ctx: CallContext) -> pb.DeleteResponse:
        return await self._accounts.delete(request, ctx)

    async def list(self, request: pb.ListRequest, ctx: CallContext) -> pb.ListResponse:
        return await self._accounts.list(request, ctx)

    async def change_secret(
        self, request: pb.ChangeSecretRequest, ctx: CallContext
    ) -> pb.ChangeSecretResponse:
        return await self._accounts.change_secret(request, ctx)

    # Sessions and tokens.

    async def token(self, request: pb.TokenRequest, ctx: CallContext) -> pb.TokenResponse:
        return await self._sessions.token(request, ctx)

    async def grant(self, request: pb.GrantRequest, ctx: CallContext) -> pb.TokenResponse:
        return await self._sessions.grant(request, ctx)

    async def inspect(self, request: pb.InspectRequest, ctx: CallContext) -> pb.InspectResponse:
        return await self._sessions.inspect(request, ctx)

    async def revoke(self, request: pb.RevokeRequest, ctx: CallContext) -> pb.RevokeResponse:
        return await self._sessions.revoke(request, ctx)

    async def revoke_sessions(
        self, request: pb.RevokeSessionsRequest, ctx: CallContext
    ) -> pb.RevokeSessionsResponse:
        return await self._sessions.revoke_sessions(request, ctx)

    async def public_keys(
        self, request: pb.PublicKeysRequest, ctx: CallContext
    ) -> pb.PublicKeysResponse:
        return pb.PublicKeysResponse(jwks=await self._keys.jwks())

    # The blocklist.

    async def block(self, request: pb.BlockRequest, ctx: CallContext) -> pb.BlockResponse:
        return await self._blocklist.block(request, ctx)

    async def unblock(self, request: pb.UnblockRequest, ctx: CallContext) -> pb.UnblockResponse:
        return await self._blocklist.unblock(request, ctx)

    # Access rules.

    async def create_rule(
        self, request: pb.CreateRuleRequest, ctx: CallContext
    ) -> pb.CreateRuleResponse:
        return await self._rules.create_rule(request, ctx)

    async def delete_rule(
        self, request: pb.DeleteRuleRequest, ctx: CallContext
    ) -> pb.DeleteRuleResponse:
        return await self._rules.delete_rule(request, ctx)

    async def list_rules(
        self, request: pb.ListRulesRequest, ctx: CallContext
    ) -> pb.ListRulesResponse:
        return await self._rules.list_rules(request, ctx)

    async def verify(self, request: pb.VerifyRequest, ctx: CallContext) -> pb.VerifyResponse:
        return await self._rules.verify(request, ctx)
