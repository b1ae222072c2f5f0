"""The service definition: every endpoint public, the catalog read through the publicapi
client with explore's own credentials, and bad input never a 500."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.auth import Account
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.errors import M3OError
from m3o.runtime.rpc import (
    Client,
    Dispatcher,
    InProcessTransport,
    StaticToken,
    TokenSource,
    Transport,
)
from m3o.runtime.rpc.fakes import FakePublisher
from m3o.runtime.store import SessionFactory
from m3o.services.explore.handler import Explore
from m3o.services.explore.proto import explore_pb2 as pb
from m3o.services.explore.proto.client import SPEC, ExploreClient
from m3o.services.explore.service import definition
from m3o.services.helloworld.catalog import publish_request
from m3o.services.publicapi.handler import Publicapi
from m3o.services.publicapi.proto import publicapi_pb2 as publicapi_pb
from m3o.services.publicapi.proto.client import SPEC as PUBLICAPI_SPEC
from m3o.services.publicapi.proto.client import PublicapiClient
from m3o.services.publicapi.service import PUBLIC_METHODS as PUBLICAPI_PUBLIC
from support.services import AnonymousRefused, TokenAccounts, dependencies

C = TypeVar("C", bound=Client)

ADMIN = Account(id="admin-1", type="user", scopes=("admin",))
EXPLORE = Account(id="explore", type="service", scopes=("service",))


class ExploreClients:
    """Clients explore makes: calling with explore's own service account."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.made: list[type] = []

    def get(self, client_type: Callable[[Transport, TokenSource | None], C]) -> C:
        self.made.append(client_type)  # type: ignore[arg-type]
        return client_type(self.transport, StaticToken("explore"))


@dataclass
class Platform:
    transport: InProcessTransport
    explore: ExploreClient
    admin: PublicapiClient
    clients: ExploreClients


async def platform(engine: AsyncEngine, sessions: SessionFactory) -> Platform:
    """A real publicapi (helloworld published) and the built explore, in process, behind
    the interceptors."""
    counters = SqlCounterStore(engine)
    accounts = TokenAccounts({"admin": ADMIN, "explore": EXPLORE})
    transport = InProcessTransport()
    publicapi = Publicapi(
        sessions=sessions, publisher=FakePublisher(), counters=counters,
        fetch_descriptors=_no_reflection,
    )  # fmt: skip
    transport.register(
        Dispatcher(PUBLICAPI_SPEC, publicapi, authenticator=accounts,
                   rules=AnonymousRefused(), public=PUBLICAPI_PUBLIC)
    )  # fmt: skip
    clients = ExploreClients(transport)
    parts = await definition.build(
        dependencies("explore", engine, sessions, clients=clients, counters=counters)
    )
    [handler] = parts.handlers
    assert handler.spec is SPEC
    assert isinstance(handler.implementation, Explore)
    assert handler.public == frozenset(SPEC.methods)
    transport.register(
        Dispatcher(SPEC, handler.implementation, authenticator=accounts,
                   rules=AnonymousRefused(), public=handler.public)
    )  # fmt: skip
    admin = PublicapiClient(transport, StaticToken("admin"))
    await admin.publish(publish_request())
    return Platform(transport, ExploreClient(transport), admin, clients)


async def _no_reflection(address: str) -> bytes:
    raise AssertionError("the tests publish descriptors")


async def test_explore_shows_what_publicapi_holds_to_anonymous_callers(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    world = await platform(engine, sessions)
    explore = world.explore
    assert definition.name == "explore"
    assert world.clients.made == [PublicapiClient]

    index = await explore.index(pb.IndexRequest())
    assert [(a.name, [e.name for e in a.endpoints]) for a in index.apis] == [
        ("helloworld", ["Helloworld.Call", "Helloworld.Stream"])
    ]
    found = await explore.api(pb.APIRequest(name="helloworld"))
    assert found.api.category == "example"
    searched = await explore.search(pb.SearchRequest(search_term="stream"))
    assert [a.name for a in searched.apis] == ["helloworld"]
    categories = await explore.list_categories(pb.ListCategoriesRequest())
    assert list(categories.categories) == ["example"]
    prices = await explore.pricing(pb.PricingRequest())
    assert dict(prices.prices[0].pricing) == {"Helloworld.Call": 0, "Helloworld.Stream": 10}
    assert dict(prices.prices[0].quotas) == {"Helloworld.Call": 0, "Helloworld.Stream": 100}


BAD_REQUESTS: list[tuple[str, object]] = [
    ("Index", pb.IndexRequest(limit=-(2**63))),
    ("Index", pb.IndexRequest(limit=2**63 - 1, offset=2**63 - 1)),
    ("Search", pb.SearchRequest(search_term="\x00" * 10)),
    ("Search", pb.SearchRequest(search_term="x" * 10_000)),
    ("Search", pb.SearchRequest(categories=["\x00"] * 1000)),
    ("API", pb.APIRequest(name="\x00")),
    ("API", pb.APIRequest(name="n" * 10_000)),
]


@pytest.mark.parametrize(("method", "request_"), BAD_REQUESTS)
async def test_bad_input_is_never_a_500(
    engine: AsyncEngine, sessions: SessionFactory, method: str, request_: publicapi_pb.ListRequest
) -> None:
    transport = (await platform(engine, sessions)).transport
    try:
        await transport.unary(SPEC, SPEC.methods[method], request_, metadata={}, timeout=10)
    except M3OError as error:
        assert 400 <= error.code < 500, error
