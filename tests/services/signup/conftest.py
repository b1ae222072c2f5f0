"""Fixtures of the signup tests: the handler over a real database and counter store, with
fakes of customers, auth, emails and the publisher.
"""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.rpc.fakes import FakePublisher
from m3o.runtime.store import SessionFactory
from m3o.services.auth.proto import auth_pb2 as auth_pb
from m3o.services.auth.proto.fakes import FakeAuthClient
from m3o.services.emails.proto.fakes import FakeEmailsClient
from m3o.services.signup.handler import Signup
from m3o.services.signup.settings import SignupSettings
from services.signup.support import ISSUED, START, CustomersDouble, World
from support.services import MovableClock


def make_world(
    engine: AsyncEngine,
    sessions: SessionFactory,
    settings: SignupSettings | None = None,
    counters: CounterStore | None = None,
) -> World:
    """The handler with fresh fakes; the counter store is the database's on ``clock``
    unless given."""
    clock = MovableClock(START)
    customers = CustomersDouble()
    auth = FakeAuthClient()
    auth.token.returns(auth_pb.TokenResponse(token=ISSUED))
    emails = FakeEmailsClient()
    publisher = FakePublisher()
    handler = Signup(
        sessions=sessions,
        publisher=publisher,
        counters=counters or SqlCounterStore(engine, now=clock),
        customers=customers.fake,
        auth=auth,
        emails=emails,
        settings=settings or SignupSettings(),
        clock=clock,
    )
    return World(handler, customers, auth, emails, publisher, clock, sessions)


@pytest.fixture
def world(engine: AsyncEngine, sessions: SessionFactory) -> World:
    return make_world(engine, sessions)
