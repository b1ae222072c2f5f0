"""Fixtures of the admin tests: the handler over a real database (SQLite and PostgreSQL)
with fake clients of every service it asks."""

from __future__ import annotations

import pytest

from m3o.runtime.store import SessionFactory
from services.admin.support import World, build_world


@pytest.fixture
def world(sessions: SessionFactory) -> World:
    return build_world(sessions)
