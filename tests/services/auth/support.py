"""Helpers of the auth tests: a clock, accounts, call contexts, the world under test."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher, profiles

from m3o.runtime.auth import Account, CallContext
from m3o.runtime.auth.tokens import JwtAuthenticator
from m3o.runtime.counters import CounterStore
from m3o.runtime.store import SessionFactory
from m3o.services.auth.handler import Auth
from m3o.services.auth.proto import auth_pb2 as pb
from m3o.services.auth.settings import AuthSettings

ADMIN = Account(id="admin", type="user", scopes=("admin",))
SERVICE = Account(id="customers", type="service", scopes=("service",))
SECRET = "correct horse battery staple"
SERVICE_SECRET = "service-secret-for-tests"


def cheap_hasher() -> PasswordHasher:
    """Argon2id with the cheapest parameters: the tests check behaviour, not strength."""
    return PasswordHasher.from_parameters(profiles.CHEAPEST)


def customer(account_id: str = "ann", session: str = "") -> Account:
    metadata = {"session": session} if session else {}
    return Account(id=account_id, type="customer", scopes=("customer",), metadata=metadata)


def call(
    method: str, account: Account | None = ADMIN, metadata: Mapping[str, str] | None = None
) -> CallContext:
    return CallContext("auth", method, account, dict(metadata or {}))


class Clock:
    """UTC now (near the real time, so plain pyjwt accepts the tokens), moved on demand."""

    def __init__(self) -> None:
        self.start = datetime.now(UTC).replace(microsecond=0)
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return self.start + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


@dataclass
class World:
    auth: Auth
    counters: CounterStore
    clock: Clock
    sessions: SessionFactory
    authenticator: JwtAuthenticator
    """Verifies tokens as any other process does: keys from PublicKeys."""

    async def generate(
        self,
        account_id: str = "ann",
        *,
        secret: str = SECRET,
        type: str = "customer",  # noqa: A002 - the field's name
        scopes: Sequence[str] = ("customer",),
        name: str = "",
    ) -> pb.GenerateResponse:
        request = pb.GenerateRequest(
            id=account_id, secret=secret, type=type, scopes=list(scopes), name=name
        )
        return await self.auth.generate(request, call("Generate"))

    async def login(
        self,
        account_id: str = "ann",
        secret: str = SECRET,
        *,
        address: str = "",
        expiry: int = 0,
    ) -> pb.TokenResponse:
        request = pb.TokenRequest(
            id=account_id, secret=secret, client_address=address, token_expiry=expiry
        )
        return await self.auth.token(request, call("Token", None))

    async def refresh(self, refresh_token: str) -> pb.TokenResponse:
        request = pb.TokenRequest(refresh_token=refresh_token)
        return await self.auth.token(request, call("Token", None))

    async def account_of(self, access_token: str) -> Account:
        return await self.authenticator.authenticate(access_token)

    def variant(
        self,
        *,
        counters: CounterStore | None = None,
        settings: AuthSettings | None = None,
        hasher: PasswordHasher | None = None,
    ) -> World:
        """Another process of the service on the same database and clock."""
        return make_world(self.sessions, counters or self.counters, self.clock, settings, hasher)


def make_world(
    sessions: SessionFactory,
    counters: CounterStore,
    clock: Clock,
    settings: AuthSettings | None = None,
    hasher: PasswordHasher | None = None,
) -> World:
    auth = Auth(
        sessions=sessions,
        counters=counters,
        settings=settings,
        clock=clock,
        hasher=hasher or cheap_hasher(),
    )

    async def jwks() -> str:
        return (await auth.public_keys(pb.PublicKeysRequest(), call("PublicKeys", None))).jwks

    authenticator = JwtAuthenticator(jwks, counters, clock=clock)
    return World(auth, counters, clock, sessions, authenticator)
