"""Fixtures of the stripe tests: the service over a real database (SQLite and PostgreSQL),
the local Stripe fake and the recording publisher."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from m3o.runtime.store import SessionFactory
from services.stripe.support import World, make_world
from support.stripe_fake import StripeFake


@pytest.fixture
async def world(sessions: SessionFactory, stripe_fake: StripeFake) -> AsyncIterator[World]:
    made = make_world(sessions, stripe_fake)
    try:
        yield made
    finally:
        await made.connection.close()
