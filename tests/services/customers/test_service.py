"""The service definition: it builds a handler the dispatcher serves, wired to its config."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.platform.clients import ClientFactory
from m3o.runtime.rpc import MethodSpec, ServiceSpec, StaticToken
from m3o.runtime.store import SessionFactory
from m3o.services.auth.proto import auth_pb2 as auth_pb
from m3o.services.customers.handler import Customers
from m3o.services.customers.proto import customers_pb2 as pb
from m3o.services.customers.proto.client import SPEC, CustomersClient
from m3o.services.customers.service import definition
from m3o.services.customers.tables import metadata
from services.customers.support import ADMIN
from support.services import EveryTokenIs, Unreachable, dependencies, serve


class AuthTransport(Unreachable):
    """Answers every call to auth with tokens for the customer set in ``customer_id``."""

    def __init__(self) -> None:
        self.requests: list[Message] = []
        self.customer_id = ""

    async def unary(
        self,
        spec: ServiceSpec,
        method: MethodSpec,
        request: Message,
        *,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> Message:
        self.requests.append(request)
        return auth_pb.TokenResponse(account=auth_pb.Account(id=self.customer_id))


@pytest.mark.parametrize(
    ("document", "expiry"),
    [
        ({"auth": {"customer_token_ttl": "1h"}}, 3600),
        ({"auth": {"customer_token_ttl": 120}}, 120),
        ({}, 30 * 24 * 3600),
    ],
    ids=["duration", "seconds", "default"],
)
async def test_definition_builds_a_served_handler_using_the_configured_token_ttl(
    engine: AsyncEngine, sessions: SessionFactory, document: dict[str, object], expiry: int
) -> None:
    assert definition.name == "customers"
    assert definition.metadata is metadata
    auth = AuthTransport()
    deps = dependencies("customers", engine, sessions, document, clients=ClientFactory(auth, None))
    parts = await definition.build(deps)
    [handler] = parts.handlers
    assert handler.spec is SPEC
    assert isinstance(handler.implementation, Customers)

    local = serve(SPEC, handler.implementation, authenticator=EveryTokenIs(ADMIN))
    customers = CustomersClient(local, StaticToken("admin-token"))
    created = (await customers.create(pb.CreateRequest(email="ann@example.com"))).customer
    await customers.mark_verified(pb.MarkVerifiedRequest(id=created.id))
    auth.customer_id = created.id
    login = await customers.login(pb.LoginRequest(email=created.email, password="secret-pw"))

    assert login.customer_id == created.id
    [token_request] = auth.requests
    assert isinstance(token_request, auth_pb.TokenRequest)
    assert token_request.token_expiry == expiry
