"""The browser tests: the console of a real `m3o serve` (``tests/e2e/serving.py``) in
headless Chromium driven by Playwright's sync API.

A platform is started once per xdist worker for all the browser tests (each test works
with people of its own), Chromium once per module; each test
gets a fresh browser context (no cookies, no permissions) at the platform's origin and one
page in it, watched for Content Security Policy violations and uncaught script errors: any
fails the test when it ends. A test that fails leaves a screenshot of the page it was on
(``FAILED-<test>.png`` beside the others, see :func:`browser.chromium.shot`).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from browser.chromium import Watch, launch, shot, shot_path
from e2e.serving import Platform, serving
from support.stripe_fake import StripeFake

TIMEOUT_MS = 15_000
"""How long an action or an assertion on a page waits (a busy 2-core machine is slow)."""

_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture(scope="session")
def platform(
    tmp_path_factory: pytest.TempPathFactory, stripe_server: StripeFake
) -> Iterator[Platform]:
    """`m3o serve` with payments on, against this test process's fake Stripe (so the
    payment forms render too)."""
    payments = {
        "M3O_STRIPE__API_KEY": stripe_server.api_key,
        "M3O_STRIPE__API_BASE": stripe_server.base_url,
        "M3O_STRIPE__SUCCESS_URL": "http://127.0.0.1/console/balance?paid=1",
        "M3O_STRIPE__CANCEL_URL": "http://127.0.0.1/console/balance",
    }
    yield from serving(tmp_path_factory.mktemp("platform"), payments)


# Module scope, not session: while Playwright's sync API is open it keeps an event loop
# running in the thread, and every asyncio test the worker runs afterwards would fail.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def context(chromium: Browser, platform: Platform) -> Iterator[BrowserContext]:
    context = chromium.new_context(base_url=platform.url)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(request: pytest.FixtureRequest, context: BrowserContext, watch: Watch) -> Iterator[Page]:
    failed = f"FAILED-{request.node.name}"
    shot_path(failed).unlink(missing_ok=True)  # from an earlier run
    page = context.new_page()
    watch.attach(page)
    yield page
    if request.node.stash.get(_FAILED, False):
        shot(page, failed)
    watch.assert_clean()
