"""Signing in and out of the console in Chromium, as the platform's admin.

The login page renders under the strict Content Security Policy without a violation; a
wrong password is shown on the form; the right one signs in (the header names the
admin), with cookies the page's scripts cannot read (``HttpOnly``, ``SameSite=Lax``);
"Sign out" ends the session with the platform: the token the cookie held stops working.
And the check for violations is not vacuous: Chromium's report of one is caught.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

from browser.chromium import CSP, Watch, shot, sign_in, sign_out, signed_in_name, visit
from e2e.serving import ADMIN_PASSWORD, Platform
from m3o.console.headers import CONTENT_SECURITY_POLICY

pytestmark = pytest.mark.e2e

SESSION_COOKIE = "m3o_session"


def _admin_only(platform: Platform, token: str) -> int:
    """The status of an admin-only call made with ``token``."""
    return platform.post("/emails/listOutbox", {"limit": 1}, token).status_code


def test_an_admin_signs_in_and_out_in_chromium(
    platform: Platform, context: BrowserContext, page: Page, watch: Watch
) -> None:
    visit(page, "/console/login")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    expect(page.get_by_role("link", name="Sign in", exact=True)).to_be_visible()
    shot(page, "sign-in-01-login")
    watch.assert_clean()

    sign_in(page, "admin", "not the admin password")
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_label("Email", exact=True)).to_have_value("admin")
    assert signed_in_name(page) == ""
    shot(page, "sign-in-02-wrong-password")

    sign_in(page, "admin", ADMIN_PASSWORD)
    expect(page.locator("header .name")).to_have_text("admin")
    expect(page.get_by_role("link", name="Admin", exact=True)).to_be_visible()
    shot(page, "sign-in-03-signed-in")

    cookies = {cookie["name"]: cookie for cookie in context.cookies()}
    assert SESSION_COOKIE in cookies, sorted(cookies)
    for cookie in cookies.values():
        assert cookie["httpOnly"], cookie["name"]
        assert cookie["sameSite"] == "Lax", cookie["name"]
    assert not page.evaluate("document.cookie")
    token = cookies[SESSION_COOKIE]["value"]
    assert _admin_only(platform, token) == 200

    sign_out(page)
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    assert SESSION_COOKIE not in {cookie["name"] for cookie in context.cookies()}
    assert _admin_only(platform, token) == 401
    shot(page, "sign-in-04-signed-out")

    visit(page, "/console/")
    assert signed_in_name(page) == ""
    watch.assert_clean()


def test_a_policy_violation_is_caught(chromium: Browser) -> None:
    """A page under the console's policy with an inline script and style: both reported."""

    def hostile(route: Route) -> None:
        route.fulfill(
            status=200,
            headers={"content-security-policy": CONTENT_SECURITY_POLICY},
            content_type="text/html",
            body='<!doctype html><title>x</title><script>document.title = "ran"</script>'
            '<p style="color: red">styled</p>',
        )

    context = chromium.new_context()
    try:
        page = context.new_page()
        watch = Watch()
        watch.attach(page)
        page.route("http://console.invalid/**", hostile)
        with page.expect_console_message(lambda message: CSP in message.text):
            page.goto("http://console.invalid/")
        expect(page).to_have_title("x")  # the script did not run
        assert watch.problems
        assert any("console.invalid" in problem for problem in watch.problems)
        try:
            watch.assert_clean()
        except AssertionError as failed:
            assert CSP in str(failed)
        else:
            raise AssertionError("a page with a violation passed the check")
    finally:
        context.close()
