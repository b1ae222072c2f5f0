"""The harness of the service tests (``tests/services/<name>/``): what a service under test
is built with, and serving it in process.

- Clocks: :class:`TickingClock` (each reading a second after the last) and
  :class:`MovableClock` (stands still until moved), from the tests' own start.
- The services it calls: :class:`Unreachable`, a transport on which any call fails the test
  (a transport that answers a call or two subclasses it); :class:`NoClients` for a service
  that calls none; ``ClientFactory(transport, None)`` for clients over one transport.
- Its callers: :class:`EveryTokenIs` (whatever the token, one account), :class:`TokenAccounts`
  (known tokens, the rest refused), and :class:`AnonymousRefused` access rules.
- :func:`dependencies`: what the process gives a service, for ``definition.build``.
- :func:`serve`: a handler behind a dispatcher (authentication, rules, errors), on an
  in-process transport of its own.
- :func:`forget_calls`: the calls fake clients recorded during a test's setup, forgotten.

Helpers of one service's tests (its accounts, call contexts, the world under test) stay in
``tests/services/<name>/support.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.platform.clients import ClientFactory
from m3o.runtime.auth import Account
from m3o.runtime.config import build_config
from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.errors import Unauthorized
from m3o.runtime.events import Publisher
from m3o.runtime.rpc import (
    AccessRules,
    Authenticator,
    Client,
    Dispatcher,
    InProcessTransport,
    MethodSpec,
    ServiceSpec,
    TokenSource,
    Transport,
    grpc_handlers,
)
from m3o.runtime.rpc.fakes import FakePublisher, FakeUnary
from m3o.runtime.service import Clients, Dependencies, HealthProbe
from m3o.runtime.store import SessionFactory

__all__ = [
    "AnonymousRefused",
    "EveryTokenIs",
    "MovableClock",
    "NoClients",
    "TickingClock",
    "TokenAccounts",
    "Unreachable",
    "dependencies",
    "forget_calls",
    "grpc_channel_to",
    "serve",
]

C = TypeVar("C", bound=Client)


class TickingClock:
    """Each reading is one second after the previous one."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


class MovableClock:
    """Stands still until moved."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


class Unreachable:
    """A transport to services that are not there: any call fails the test."""

    async def unary(
        self,
        spec: ServiceSpec,
        method: MethodSpec,
        request: Message,
        *,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> Message:
        raise AssertionError(f"unexpected call to {spec.service}")

    def server_stream(
        self,
        spec: ServiceSpec,
        method: MethodSpec,
        request: Message,
        *,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> AsyncIterator[Message]:
        raise NotImplementedError


class NoClients:
    """The clients of a service that calls no other: asking for one fails the test."""

    def __init__(self, service: str) -> None:
        self.service = service

    def get(self, client_type: Callable[[Transport, TokenSource | None], C]) -> C:
        raise AssertionError(f"{self.service} calls no other service")


class EveryTokenIs:
    """An authenticator: whatever the token, the caller is ``account``."""

    def __init__(self, account: Account) -> None:
        self.account = account

    async def authenticate(self, token: str) -> Account:
        return self.account


class TokenAccounts:
    """An authenticator: each token of ``accounts`` is its account; any other is refused."""

    def __init__(self, accounts: Mapping[str, Account]) -> None:
        self.accounts = dict(accounts)

    async def authenticate(self, token: str) -> Account:
        found = self.accounts.get(token)
        if found is None:
            raise Unauthorized("auth", "Unauthorized")
        return found


class AnonymousRefused:
    """Access rules refusing every anonymous call, as the platform's default rule does; any
    account may call."""

    async def verify(self, account: Account | None, service: str, endpoint: str) -> None:
        if account is None:
            raise Unauthorized(f"{service}.{endpoint}", "Unauthorized")


def dependencies(
    name: str,
    engine: AsyncEngine,
    sessions: SessionFactory,
    document: Mapping[str, Any] | None = None,
    *,
    publisher: Publisher | None = None,
    clients: Clients | None = None,
    counters: CounterStore | None = None,
    service_names: Sequence[str] = (),
    on_rules_changed: Callable[[], None] | None = None,
    health: HealthProbe | None = None,
) -> Dependencies:
    """What the process gives service ``name``: the config ``document`` describes (no
    environment), and unless given a recording publisher, every other service unreachable
    and the database's counter store."""
    return Dependencies(
        name=name,
        sessions=sessions,
        publisher=FakePublisher() if publisher is None else publisher,
        clients=ClientFactory(Unreachable(), None) if clients is None else clients,
        config=build_config(document or {}, {}),
        counters=SqlCounterStore(engine) if counters is None else counters,
        service_names=tuple(service_names),
        on_rules_changed=on_rules_changed,
        health=health,
    )


def serve(
    spec: ServiceSpec,
    implementation: object,
    *,
    authenticator: Authenticator | None = None,
    rules: AccessRules | None = None,
    public: frozenset[str] = frozenset(),
) -> InProcessTransport:
    """``implementation`` behind a dispatcher, as a process serves it, on a transport of its
    own."""
    transport = InProcessTransport()
    transport.register(
        Dispatcher(spec, implementation, authenticator=authenticator, rules=rules, public=public)
    )
    return transport


@asynccontextmanager
async def grpc_channel_to(dispatcher: Dispatcher) -> AsyncIterator[grpc.aio.Channel]:
    """``dispatcher`` served by a ``grpc.aio`` server on a free port of 127.0.0.1, and a
    channel to it, until the block ends."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc_handlers(dispatcher)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel
    finally:
        await channel.close()
        await server.stop(None)


def forget_calls(*fakes: object) -> None:
    """Forget the calls the methods of these fake clients recorded (a test's setup is not
    its subject)."""
    for fake in fakes:
        for method in vars(fake).values():
            if isinstance(method, FakeUnary):
                method.recorded.clear()
