"""Fixtures of the emails tests: the handler over a real database, a recording transport."""

from __future__ import annotations

import pytest

from m3o.runtime.store import SessionFactory
from services.emails.support import START, RecordingTransport, UnusedDatabase, World, make_world
from support.services import MovableClock


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(START)


@pytest.fixture
def transport() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture
def world(sessions: SessionFactory, transport: RecordingTransport, clock: MovableClock) -> World:
    return make_world(sessions, transport, clock)


@pytest.fixture
def offline(transport: RecordingTransport, clock: MovableClock) -> World:
    """A world whose database may not be used: for calls refused before any storage."""
    return make_world(UnusedDatabase(), transport, clock)  # type: ignore[arg-type]
