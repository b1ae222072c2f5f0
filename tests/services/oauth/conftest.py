"""Fixtures of the oauth tests: the handler against a fake Google and GitHub."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.oauth.support import World, build_world


@pytest.fixture
async def world() -> AsyncIterator[World]:
    made = build_world()
    try:
        yield made
    finally:
        await made.http.aclose()
