"""The console in process: the whole local platform (``open_local``) served to an
``httpx`` client that keeps cookies as a browser does.

``site`` is the platform on SQLite (the console keeps no data of its own: it calls the
services, whose storage is tested on both databases elsewhere); ``site_on_both`` is the same
on SQLite and PostgreSQL, for the tests that follow one person's data through the pages
where money and credentials are kept (keys, balance and billing, admin).
Both are shared by the tests of a module (a platform start is most of a test's time), which
therefore run in the module's event loop (``pytestmark`` in each module) and each work
with people of their own; the fake Stripe is not emptied between them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from console.site import Site, open_site
from support.stripe_fake import StripeFake


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(
    tmp_path_factory: pytest.TempPathFactory, stripe_server: StripeFake
) -> AsyncIterator[Site]:
    async with open_site(tmp_path_factory.mktemp("site"), "sqlite", stripe_server) as opened:
        yield opened


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgresql"])
async def site_on_both(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    stripe_server: StripeFake,
) -> AsyncIterator[Site]:
    data_dir = tmp_path_factory.mktemp(f"site-{request.param}")
    async with open_site(data_dir, request.param, stripe_server) as opened:
        yield opened
