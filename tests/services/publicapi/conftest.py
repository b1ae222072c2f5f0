"""Fixtures of the publicapi tests: the handler over a real database and counter store,
with a recording publisher and a fake reflection client."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.rpc.fakes import FakePublisher
from m3o.runtime.store import SessionFactory
from m3o.services.publicapi.handler import Publicapi
from services.publicapi.support import START, TWO_SERVICES_PROTO, FakeFetcher, World, compile_proto
from support.services import TickingClock


@pytest.fixture
def world(engine: AsyncEngine, sessions: SessionFactory) -> World:
    publisher = FakePublisher()
    fetcher = FakeFetcher()
    counters = SqlCounterStore(engine)
    clock = TickingClock(START)
    handler = Publicapi(
        sessions=sessions,
        publisher=publisher,
        counters=counters,
        fetch_descriptors=fetcher,
        clock=clock,
    )
    return World(handler, publisher, fetcher, counters, sessions, clock)


@pytest.fixture(scope="session")
def two_services(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Descriptors compiled by protoc with source info: helloworld.Helloworld and
    helloworld.Greeter, importing a well-known type."""
    return compile_proto(tmp_path_factory.mktemp("protos"), TWO_SERVICES_PROTO)
