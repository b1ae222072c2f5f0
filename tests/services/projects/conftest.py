"""Fixtures of the projects tests: the handler over a real database, fake customers and
the recording publisher."""

from __future__ import annotations

import pytest

from m3o.runtime.rpc.fakes import FakePublisher
from m3o.runtime.store import SessionFactory
from m3o.services.customers.proto.fakes import FakeCustomersClient
from m3o.services.projects.handler import Projects
from services.projects.support import LIMITS, START, World
from support.services import TickingClock


@pytest.fixture
def world(sessions: SessionFactory) -> World:
    customers = FakeCustomersClient()
    publisher = FakePublisher()
    clock = TickingClock(START)
    handler = Projects(
        sessions=sessions,
        publisher=publisher,
        customers=customers,
        project_limits=LIMITS,
        clock=clock,
    )
    return World(handler, customers, publisher, sessions, clock)
