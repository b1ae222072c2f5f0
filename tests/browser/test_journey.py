"""A customer's journey through the console in Chromium, against the page contract.

Sign up with the code from the outbox, sign out and in again, create a key for
helloworld, copy it with the page's "Copy" button (read back from the clipboard), call
``Helloworld.Call`` with it from the API's "Try it" form, see the call in the usage table
and the chart drawn, revoke the key (accepting the confirmation) and see the next call
refused with 401, sign out. Another customer's key and call, made meanwhile, never show
(the usage page counts exactly the one call). Every page is screenshotted; no page may
report a Content Security Policy violation or a script error.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Dialog, Page, expect

from browser.chromium import Watch, shot, sign_in, sign_out, visit
from e2e.serving import CODE_SENTENCE, Platform, eventually

# A whole journey with a platform start, on a busy 2-core machine: more than the default 120 s.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

EMAIL = "browser.journey@example.com"
PASSWORD = "a browser journey password"
DESCRIPTION = "browser journey"
OTHER = "someone.else@example.com"
OTHER_KEY = "someone else's key"

USAGE_SECONDS = 60
"""How long the asynchronous usage consumer may take to count a call."""
KEY_CACHE_SECONDS = 15
"""How long the gateway may go on accepting a revoked key (its cache holds keys ~1 s)."""


def _element_text(page: Page, element_id: str) -> str:
    """The value of an input, else the text, of the element ``element_id``."""
    text: str = page.evaluate(
        """id => {
            const element = document.getElementById(id);
            if (!element) return "";
            return (element.value !== undefined ? element.value : element.textContent).trim();
        }""",
        element_id,
    )
    return text


def _other_customer(platform: Platform) -> None:
    """Another customer, signed up over the API, with a key and a helloworld call."""
    assert platform.post("/signup/user", {"email": OTHER}).status_code == 200
    code = platform.latest_email(OTHER, "verification", CODE_SENTENCE)
    verified = platform.post("/signup/verify", {"email": OTHER, "token": code, "secret": PASSWORD})
    assert verified.status_code == 200, verified.text
    token = verified.json()["authToken"]["access_token"]
    generated = platform.post(
        "/v1/api/keys/generate", {"scopes": ["helloworld"], "description": OTHER_KEY}, token
    )
    assert generated.status_code == 200, generated.text
    called = platform.post("/v1/helloworld/call", {"name": "Other"}, generated.json()["api_key"])
    assert called.status_code == 200, called.text


def _keys_of(platform: Platform) -> list[dict[str, Any]]:
    """The customer's keys as the platform API lists them (signed in with the password)."""
    login = platform.post("/customers/login", {"email": EMAIL, "password": PASSWORD})
    assert login.status_code == 200, login.text
    listed = platform.post("/v1/api/keys/list", {}, login.json()["token"]["access_token"])
    assert listed.status_code == 200, listed.text
    keys: list[dict[str, Any]] = listed.json().get("api_keys", [])
    return keys


def _try_call(page: Page, key: str, name: str) -> str:
    """Send ``Helloworld.Call`` with ``key`` from the API page's "Try it" form; the status."""
    visit(page, "/console/apis/helloworld")
    endpoint = page.get_by_label("Endpoint", exact=True)
    labels = endpoint.locator("option").all_inner_texts()
    calls = [i for i, label in enumerate(labels) if re.search(r"\bCall\b", label)]
    assert calls, f"no Helloworld.Call among the endpoints {labels}"
    endpoint.select_option(index=calls[0])
    # Pre-filled with the endpoint's example request.
    expect(page.get_by_label("Request", exact=True)).to_have_value(re.compile(r"^\s*\{"))
    page.get_by_label("API key", exact=True).fill(key)
    shot(page, name)
    page.get_by_role("button", name="Send", exact=True).click()
    status = page.locator("#try-status")
    expect(status).to_have_text(re.compile(r"\b\d{3}\b"))
    return status.inner_text().strip()


def _helloworld_calls(page: Page) -> int | None:
    """The usage page's count of helloworld calls (None before its row appears)."""
    visit(page, "/console/usage")
    rows = page.get_by_role("row").filter(has_text="helloworld")
    if not rows.count():
        return None
    for cell in rows.first.get_by_role("cell").all_inner_texts():
        counted = re.fullmatch(r"(\d+)( calls?)?", cell.strip())
        if counted:
            return int(counted.group(1))
    return None


def test_the_customer_journey_in_chromium(
    platform: Platform, context: BrowserContext, page: Page, watch: Watch
) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=platform.url)
    _other_customer(platform)  # whose key and call never show in this customer's pages

    # Sign up: the code comes by email, the new account is signed in on the front page.
    visit(page, "/console/signup")
    shot(page, "journey-01-signup")
    page.get_by_label("Email", exact=True).fill(EMAIL)
    page.get_by_role("button", name="Send code", exact=True).click()
    expect(page.get_by_label("Code", exact=True)).to_be_visible()
    shot(page, "journey-02-signup-code")
    page.get_by_label("Code", exact=True).fill(
        platform.latest_email(EMAIL, "verification", CODE_SENTENCE)
    )
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    # Beyond the contract (Code, Password): a page may ask for the password twice.
    repeat = page.get_by_label(re.compile(r"^(Confirmation|Confirm password)$"))
    if repeat.count():
        repeat.fill(PASSWORD)
    page.get_by_role("button", name="Create account", exact=True).click()
    expect(page).to_have_url(f"{platform.url}/console/")
    expect(page.locator("header .name")).to_have_text(EMAIL)
    shot(page, "journey-03-signed-up")

    # Out and in again with the new password.
    sign_out(page)
    sign_in(page, EMAIL, PASSWORD)
    expect(page.locator("header .name")).to_have_text(EMAIL)
    shot(page, "journey-04-signed-in")

    # A key for helloworld: shown once, copied with the page's button.
    visit(page, "/console/keys")
    shot(page, "journey-05-keys")
    page.get_by_label("Description", exact=True).fill(DESCRIPTION)
    page.get_by_label("helloworld", exact=True).check()
    page.get_by_role("button", name="Create key", exact=True).click()
    expect(page.locator("#new-key")).to_be_visible()
    key = _element_text(page, "new-key")
    assert key.startswith("m3o_"), key
    shot(page, "journey-06-key-created")
    page.get_by_role("button", name="Copy", exact=True).click()
    copied = eventually(
        lambda: page.evaluate("navigator.clipboard.readText()"), "the key on the clipboard", 5
    )
    assert copied.strip() == key
    # The list: one row for it, with a "Revoke" button, and never the secret.
    visit(page, "/console/keys")
    revocable = page.get_by_role("row").filter(
        has=page.get_by_role("button", name="Revoke", exact=True)
    )
    expect(revocable).to_have_count(1)
    expect(revocable).to_contain_text(DESCRIPTION)
    assert key not in page.content()
    assert OTHER_KEY not in page.content()
    [listed] = _keys_of(platform)
    assert listed["description"] == DESCRIPTION

    # Try it: Helloworld.Call with the copied key.
    assert _try_call(page, copied.strip(), "journey-07-api").startswith("200")
    expect(page.locator("pre#try-answer")).to_contain_text("Hello")
    shot(page, "journey-08-api-answered")

    # Usage: the call once the usage consumer has counted it, in the table and the chart.
    eventually(
        lambda: _helloworld_calls(page) == 1, "1 helloworld call on the usage page", USAGE_SECONDS
    )
    expect(page.locator("#usage-chart canvas").first).to_be_attached()
    assert OTHER not in page.content()  # nor is the other customer's call counted above
    shot(page, "journey-09-usage")

    # Revoke the key (the form asks first) and the next call is refused.
    visit(page, "/console/keys")
    asked: list[str] = []

    def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    revocable.get_by_role("button", name="Revoke", exact=True).click()
    expect(revocable).to_have_count(0)
    assert len(asked) == 1, "revoking did not ask first"
    shot(page, "journey-10-key-revoked")
    assert _keys_of(platform) == []
    eventually(
        lambda: re.search(r"\b401\b", _try_call(page, key, "journey-11-api-revoked")),
        "401 for the revoked key",
        KEY_CACHE_SECONDS,
    )
    shot(page, "journey-12-api-refused")

    sign_out(page)
    shot(page, "journey-13-signed-out")
    watch.assert_clean()
