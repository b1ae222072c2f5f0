"""Fixtures of the billing tests: the handler over a real database (SQLite and
PostgreSQL), the fake stripe client and the recording publisher."""

from __future__ import annotations

import pytest

from m3o.runtime.store import SessionFactory
from services.billing.support import World, build_world


@pytest.fixture
def world(sessions: SessionFactory) -> World:
    return build_world(sessions)
