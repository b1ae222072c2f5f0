"""The console in process: the whole local platform (``open_local``) served to an
``httpx`` client that keeps cookies as a browser does.

``site`` is the platform on SQLite (the console keeps no data of its own: it calls the
services, whose storage is tested on both databases elsewhere); ``site_on_both`` is the same
on SQLite and PostgreSQL, for the tests that follow one person's data through the pages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from console.site import Site, open_site
from support.stripe_fake import StripeFake


@pytest.fixture
async def site(tmp_path: Path, stripe_fake: StripeFake) -> AsyncIterator[Site]:
    async with open_site(tmp_path, "sqlite", stripe_fake) as opened:
        yield opened


@pytest.fixture(params=["sqlite", "postgresql"])
async def site_on_both(
    request: pytest.FixtureRequest, tmp_path: Path, stripe_fake: StripeFake
) -> AsyncIterator[Site]:
    async with open_site(tmp_path, request.param, stripe_fake) as opened:
        yield opened
