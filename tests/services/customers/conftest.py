"""Fixtures of the customers tests: the handler over a real database, fake auth and events."""

from __future__ import annotations

import pytest

from m3o.runtime.rpc.fakes import FakePublisher
from m3o.runtime.store import SessionFactory
from m3o.services.auth.proto.fakes import FakeAuthClient
from m3o.services.customers.handler import Customers
from services.customers.support import START, World
from support.services import TickingClock


@pytest.fixture
def world(sessions: SessionFactory) -> World:
    auth = FakeAuthClient()
    publisher = FakePublisher()
    clock = TickingClock(START)
    handler = Customers(sessions=sessions, publisher=publisher, auth=auth, clock=clock)
    return World(handler, auth, publisher, clock, sessions)
