"""Every console page in Chromium: as a visitor, as a customer with a key, a call and a
credit, and as the admin. Each page answers 200 with the Content-Security-Policy header,
renders with no policy violation or script error, has one ``h1``, a label for every field
a person fills in, and is screenshotted (``every-page-<who>-<page>.png``)."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from playwright.sync_api import Page

from browser.chromium import Watch, shot, sign_in, sign_out
from e2e.serving import ADMIN_PASSWORD, CODE_SENTENCE, Platform
from m3o.console.headers import CONTENT_SECURITY_POLICY

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

EMAIL = "every.page@example.com"
PASSWORD = "an every page password"

UNLABELLED = """() => [...document.querySelectorAll(
    'input:not([type=hidden]):not([type=submit]), select, textarea')]
  .filter(field => !field.labels.length && !field.getAttribute('aria-label')
                   && !field.getAttribute('aria-labelledby'))
  .map(field => field.name || field.id || field.outerHTML)"""


def _customer(platform: Platform) -> str:
    """A customer with a key, a helloworld call and a credit; returns their id."""
    assert platform.post("/signup/user", {"email": EMAIL}).status_code == 200
    code = platform.latest_email(EMAIL, "verification", CODE_SENTENCE)
    verified = platform.post("/signup/verify", {"email": EMAIL, "token": code, "secret": PASSWORD})
    assert verified.status_code == 200, verified.text
    customer_id: str = verified.json()["customerID"]
    token = verified.json()["authToken"]["access_token"]
    generated = platform.post(
        "/v1/api/keys/generate", {"scopes": ["helloworld"], "description": "every page"}, token
    )
    assert generated.status_code == 200, generated.text
    called = platform.post("/v1/helloworld/call", {"name": "Page"}, generated.json()["api_key"])
    assert called.status_code == 200, called.text
    credit = {
        "customer_id": customer_id,
        "delta": 2_500_000,
        "reference": "Welcome credit",
        "idempotency_key": f"every-page-{customer_id}",
        "visible": True,
    }
    credited = platform.post("/balance/increment", credit, platform.admin_token())
    assert credited.status_code == 200, credited.text
    return customer_id


def _check(page: Page, watch: Watch, path: str, name: str) -> None:
    response = page.goto(path)
    assert response is not None, path
    assert response.status == 200, f"GET {path}: {response.status}"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
    page.wait_for_load_state("load")
    assert page.locator("h1").count() == 1, f"{path}: one h1"
    unlabelled = page.evaluate(UNLABELLED)
    assert not unlabelled, f"{path}: fields without a label: {unlabelled}"
    shot(page, f"every-page-{name}")
    watch.assert_clean()


def test_every_page_renders_under_the_policy_with_labelled_fields(
    platform: Platform, page: Page, watch: Watch
) -> None:
    customer_id = _customer(platform)
    visitor = {
        "/console/": "visitor-home",
        "/console/signup": "visitor-signup",
        f"/console/signup/verify?email={quote(EMAIL)}": "visitor-signup-code",
        "/console/login": "visitor-login",
        "/console/recover": "visitor-recover",
        f"/console/reset?email={quote(EMAIL)}": "visitor-reset",
        "/console/apis": "visitor-apis",
        "/console/apis?q=hello": "visitor-apis-search",
        "/console/apis/helloworld": "visitor-api",
    }
    for path, name in visitor.items():
        _check(page, watch, path, name)

    sign_in(page, EMAIL, PASSWORD)
    customer = {
        "/console/": "customer-home",
        "/console/keys": "customer-keys",
        "/console/usage": "customer-usage",
        "/console/balance": "customer-balance",
        "/console/billing": "customer-billing",
        "/console/apis/helloworld": "customer-api",
    }
    for path, name in customer.items():
        _check(page, watch, path, name)
    # What the customer's pages show is theirs: the credit, the key.
    page.goto("/console/balance")
    assert re.search(r"Welcome credit", page.inner_text("main"))
    page.goto("/console/keys")
    assert "every page" in page.inner_text("main")
    page.goto("/console/billing")  # payments are on: the payment forms were checked too
    assert page.get_by_role("button", name="Save a card").count() == 1
    sign_out(page)

    sign_in(page, "admin", ADMIN_PASSWORD)
    admin = {
        "/console/admin": "admin-customers",
        f"/console/admin?q={quote(EMAIL)}": "admin-search",
        f"/console/admin/customers/{customer_id}": "admin-customer",
        f"/console/admin/customers/{customer_id}/delete": "admin-delete",
    }
    for path, name in admin.items():
        _check(page, watch, path, name)
    assert EMAIL in page.inner_text("main")
    sign_out(page)
