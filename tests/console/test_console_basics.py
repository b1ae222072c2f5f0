"""What every console page shares: the way in from ``/``, the security headers, signing in
and out with the session cookie's flags, and forms refused without their CSRF token."""

from __future__ import annotations

import pytest

from console.site import PASSWORD, Site, Text
from m3o.console.headers import CONTENT_SECURITY_POLICY

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_the_root_leads_to_the_console_and_every_answer_carries_the_policy(
    site: Site,
) -> None:
    browser = site.browser()
    root = await browser.get("/")
    assert root.status_code == 307
    assert root.headers["location"] == "/console/"
    for path in ("/console/", "/console/login", "/console/static/console.css"):
        page = await browser.get(path)
        assert page.status_code == 200, path
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
    assert (await browser.get("/console/")).headers["cache-control"] == "no-store"
    assert "max-age" in (await browser.get("/console/static/console.css")).headers["cache-control"]
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY


async def test_signing_in_sets_a_protected_session_cookie_and_signing_out_ends_it(
    site: Site,
) -> None:
    person = await site.person("basics@example.com")
    browser = site.browser()
    signed_in = await browser.submit(
        "/console/login", {"email": person.email, "password": PASSWORD, "next": "/console/"}
    )
    assert signed_in.status_code == 303, signed_in.text
    assert signed_in.headers["location"] == "/console/"
    cookie = next(
        value
        for name, value in signed_in.headers.multi_items()
        if name == "set-cookie" and value.startswith("m3o_session=")
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http here; over https it is Secure
    token = browser.session
    home = await browser.get("/console/")
    assert person.email in Text.of(home.text)

    signed_out = await browser.submit("/console/logout")
    assert signed_out.status_code == 303
    assert not browser.session
    # The token itself was ended, not only forgotten by this browser.
    reused = site.browser(token)
    assert person.email not in Text.of((await reused.get("/console/")).text)


async def test_a_wrong_password_is_shown_on_the_form(site: Site) -> None:
    person = await site.person("wrong@example.com")
    browser = site.browser()
    answer = await browser.submit(
        "/console/login", {"email": person.email, "password": "nope nope"}
    )
    assert answer.status_code == 401
    assert 'role="alert"' in answer.text
    assert not browser.session


async def test_a_form_without_its_csrf_token_is_refused(site: Site) -> None:
    person = await site.person("csrf@example.com")
    browser = site.browser()
    await browser.get("/console/login")
    refused = await browser.client.post(
        "/console/login", data={"email": person.email, "password": PASSWORD}
    )
    assert refused.status_code == 403
    assert not browser.session
    forged = await browser.client.post(
        "/console/login",
        data={"email": person.email, "password": PASSWORD, "csrf_token": "x" * 43},
    )
    assert forged.status_code == 403


async def test_https_requests_get_secure_cookies(site: Site) -> None:
    browser = site.browser()
    page = await browser.client.get("https://console.test/console/login")
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("m3o_csrf=") and "Secure" in cookie and "HttpOnly" in cookie
