"""The identity pages: signing up with the emailed code, recovering a password, signing in
with Google or GitHub (a fake of both, served on a real port), the admin on the same login
page, and ``next`` never leading off the console."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import pytest_asyncio

from console.site import ADMIN_PASSWORD, ORIGIN, PASSWORD, Browser, Site, Text, open_site, until
from e2e.serving import RESET_TOKEN
from m3o.console.pages.identity import OAUTH_STATE_COOKIE
from services.oauth.fake_providers import (
    GITHUB_CODE,
    GOOGLE_CODE,
    ServedProviders,
    served_providers,
)
from support.stripe_fake import StripeFake

pytestmark = pytest.mark.asyncio(loop_scope="module")

NEW_PASSWORD = "a brand new passphrase"
RESET_LINK = re.compile(r"choose a new password: (\S+/console/reset\?\S+)")


@pytest.fixture
def providers() -> Iterator[ServedProviders]:
    """The fake Google and GitHub on a port of their own."""
    with served_providers() as served:
        yield served


@pytest_asyncio.fixture(loop_scope="module")
async def oauth_site(
    tmp_path: Path,
    stripe_fake: StripeFake,
    providers: ServedProviders,
) -> AsyncIterator[Site]:
    """The platform with Google and GitHub login configured against ``providers``, and
    addresses at ``blocked.example`` refused at signup."""
    url = providers.url
    settings = {
        "M3O_SIGNUP__BLOCK_LIST": '["@blocked\\\\.example$"]',
        "M3O_OAUTH__GOOGLE__CLIENT_ID": "google-client",
        "M3O_OAUTH__GOOGLE__CLIENT_SECRET": "google-secret",
        "M3O_OAUTH__GOOGLE__REDIRECT_URL": f"{ORIGIN}/console/oauth/google",
        "M3O_OAUTH__GOOGLE__AUTHORIZE_URL": f"{url}/google/authorize",
        "M3O_OAUTH__GOOGLE__TOKEN_URL": f"{url}/google/token",
        "M3O_OAUTH__GOOGLE__USERINFO_URL": f"{url}/google/userinfo",
        "M3O_OAUTH__GITHUB__CLIENT_ID": "github-client",
        "M3O_OAUTH__GITHUB__CLIENT_SECRET": "github-secret",
        "M3O_OAUTH__GITHUB__REDIRECT_URL": f"{ORIGIN}/console/oauth/github",
        "M3O_OAUTH__GITHUB__AUTHORIZE_URL": f"{url}/github/authorize",
        "M3O_OAUTH__GITHUB__TOKEN_URL": f"{url}/github/login/oauth/access_token",
        "M3O_OAUTH__GITHUB__EMAILS_URL": f"{url}/github/user/emails",
    }

    async with open_site(tmp_path, "sqlite", stripe_fake, settings) as opened:
        yield opened


def _shows(page: httpx.Response, *texts: str) -> str:
    text = Text.of(page.text)
    for expected in texts:
        assert expected in text, f"{expected!r} not in {text!r}"
    return text


def _input(page: httpx.Response, name: str) -> str:
    """The value of the input called ``name`` in ``page``."""
    found = re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', page.text)
    assert found, f"no input {name}"
    return found.group(1)


async def _reset_token(site: Site, address: str) -> str:
    """The newest reset token emailed to ``address``."""
    return await site.emailed(address, RESET_TOKEN, "a reset token")


async def _sign_in(browser: Browser, email: str, password: str) -> httpx.Response:
    return await browser.submit(
        "/console/login", {"email": email, "password": password}, page="/console/login"
    )


async def test_signing_up_with_the_emailed_code_then_signing_in_again(
    site: Site,
) -> None:
    email = "newcomer@example.com"
    browser = site.browser()
    form = await browser.get("/console/signup")
    assert form.status_code == 200
    assert '<label for="field-email">Email</label>' in form.text
    assert ">Send code</button>" in form.text

    sent = await browser.submit("/console/signup", {"email": email})
    assert sent.status_code == 303, sent.text
    verify_path = "/console/signup/verify?" + urlencode({"email": email})
    assert sent.headers["location"] == verify_path
    page = await browser.get(verify_path)
    _shows(page, f"We emailed {email}", email, "Create account")
    # No email leaves this platform (emails.enabled is off): the page says where the code is.
    _shows(page, f"m3o emails list --to {email} shows the code")
    for label in ("Code", "Password", "Confirmation"):
        assert f">{label}</label>" in page.text
    first = await site.signup_code(email)

    # A new code replaces the first one.
    again = await browser.submit("/console/signup", {"email": email})
    assert again.headers["location"] == verify_path

    async def newer() -> str:
        code = await site.signup_code(email)
        return code if code != first else ""

    code = await until(newer, "a second code")
    fields = {"email": email, "code": code, "password": PASSWORD, "confirm": PASSWORD}

    stale = await browser.submit("/console/signup/verify", {**fields, "code": first})
    assert stale.status_code == 403
    _shows(stale, "This is not the code we emailed")
    assert 'role="alert"' in stale.text and first not in stale.text
    mismatched = await browser.submit("/console/signup/verify", {**fields, "confirm": "x" * 20})
    assert mismatched.status_code == 400
    _shows(mismatched, "The password and its confirmation differ")
    assert PASSWORD not in mismatched.text
    assert _input(mismatched, "code") == code  # kept for the next try
    short = await browser.submit(
        "/console/signup/verify", {**fields, "password": "short", "confirm": "short"}
    )
    assert short.status_code == 400
    _shows(short, "at least 8 characters")
    assert not browser.session

    created = await browser.submit("/console/signup/verify", fields)
    assert created.status_code == 303, created.text
    assert created.headers["location"] == "/console/"
    assert browser.session
    _shows(await browser.get("/console/"), "Welcome to M3O", email)
    customer = await site.call("/customers/read", {"email": email}, await site.admin_token())
    assert customer["customer"]["status"] == "verified"

    await browser.submit("/console/logout")
    assert not browser.session
    signed_in = await _sign_in(browser, email, PASSWORD)
    assert signed_in.status_code == 303
    _shows(await browser.get("/console/"), email)


async def test_signup_errors_and_forged_forms_are_refused(
    oauth_site: Site,
) -> None:
    site = oauth_site
    browser = site.browser()
    blocked = await browser.submit("/console/signup", {"email": "someone@blocked.example"})
    assert blocked.status_code == 403
    _shows(blocked, "This email address cannot be used to sign up")
    invalid = await browser.submit("/console/signup", {"email": "not an address"})
    assert invalid.status_code == 400
    assert 'role="alert"' in invalid.text
    empty = await browser.submit("/console/signup", {"email": ""})
    assert empty.status_code == 400

    forged = await browser.client.post("/console/signup", data={"email": "forged@example.com"})
    assert forged.status_code == 403
    wrong = await browser.client.post(
        "/console/signup", data={"email": "forged@example.com", "csrf_token": "x" * 43}
    )
    assert wrong.status_code == 403
    await site.person("witness@example.com")  # emails do flow: this one got its code
    assert await site.emails_to("forged@example.com") == []

    no_code = await browser.submit(
        "/console/signup/verify",
        {
            "email": "never@example.com",
            "code": "ABCDEFGH",
            "password": PASSWORD,
            "confirm": PASSWORD,
        },
    )
    assert no_code.status_code == 404
    _shows(no_code, "No code is waiting for this address")
    assert (await browser.get("/console/signup/verify")).headers["location"] == "/console/signup"


async def test_recovering_a_password_end_to_end(site: Site) -> None:
    person = await site.person("forgetful@example.com")
    old_session = site.browser(person.token)
    _shows(await old_session.get("/console/"), person.email)

    browser = site.browser()
    _shows(await browser.get("/console/login"), "Forgot your password?")
    asked = await browser.submit("/console/recover", {"email": person.email})
    assert asked.status_code == 303, asked.text
    assert asked.headers["location"] == "/console/reset?" + urlencode({"email": person.email})
    page = await browser.get(asked.headers["location"])
    known = _shows(page, "we emailed it a reset token")
    assert _input(page, "email") == person.email

    # An address without an account gets the very same answer.
    stranger = site.browser()
    unknown = await stranger.submit("/console/recover", {"email": "nobody@example.com"})
    assert unknown.status_code == 303
    shown = Text.of((await stranger.get(unknown.headers["location"])).text)
    assert shown.replace("nobody@example.com", person.email) == known
    assert await site.emails_to("nobody@example.com") == []

    token = await _reset_token(site, person.email)
    # The email links to the reset page with the address and the token filled in.
    link = await site.emailed(person.email, RESET_LINK, "a reset link")
    linked = await browser.get(link.removeprefix(site.platform.config.server.base_url))
    assert (_input(linked, "email"), _input(linked, "token")) == (person.email, token)
    fields = {"email": person.email, "token": token, "password": NEW_PASSWORD}
    mismatched = await browser.submit("/console/reset", {**fields, "confirm": "something else"})
    assert mismatched.status_code == 400
    _shows(mismatched, "differ")
    wrong = await browser.submit(
        "/console/reset", {**fields, "token": "A" * 43, "confirm": NEW_PASSWORD}
    )
    assert wrong.status_code == 400
    _shows(wrong, "The reset token is invalid")

    done = await browser.submit("/console/reset", {**fields, "confirm": NEW_PASSWORD})
    assert done.status_code == 303, done.text
    login_path = "/console/login?" + urlencode({"email": person.email})
    assert done.headers["location"] == login_path
    login = await browser.get(login_path)
    _shows(login, "Your password is changed")
    assert _input(login, "email") == person.email
    # Every session ended, the one in another browser too.
    assert person.email not in Text.of((await old_session.get("/console/")).text)
    used = await browser.submit("/console/reset", {**fields, "confirm": NEW_PASSWORD})
    assert used.status_code == 400

    assert (await _sign_in(browser, person.email, PASSWORD)).status_code == 401
    signed_in = await _sign_in(browser, person.email, NEW_PASSWORD)
    assert signed_in.status_code == 303
    _shows(await browser.get("/console/"), person.email)


async def test_signing_in_with_google_then_github(
    oauth_site: Site, providers: ServedProviders
) -> None:
    site = oauth_site
    browser = site.browser()
    for path in ("/console/login", "/console/signup"):
        page = await browser.get(path)
        assert 'href="/console/login/google"' in page.text
        assert 'href="/console/login/github"' in page.text
        _shows(page, "Continue with Google", "Continue with GitHub")

    async def start(who: Browser, provider: str) -> str:
        went = await who.get(f"/console/login/{provider}")
        assert went.status_code == 303, went.text
        to = urlsplit(went.headers["location"])
        assert to.path == f"/{provider}/authorize"
        query = parse_qs(to.query)
        assert query["client_id"] == [f"{provider}-client"]
        assert query["redirect_uri"] == [f"{ORIGIN}/console/oauth/{provider}"]
        cookie = next(v for k, v in went.headers.multi_items() if OAUTH_STATE_COOKIE in v)
        assert "HttpOnly" in cookie and "Path=/console/oauth" in cookie
        return query["state"][0]

    state = await start(browser, "google")
    back = await browser.get(
        "/console/oauth/google?" + urlencode({"state": state, "code": GOOGLE_CODE})
    )
    assert back.status_code == 303, back.text
    assert back.headers["location"] == "/console/"
    _shows(await browser.get("/console/"), "Welcome to M3O", "ann@example.com")
    first = await site.call(
        "/customers/read", {"email": "ann@example.com"}, await site.admin_token()
    )

    # The same address through GitHub signs into the same customer.
    again = site.browser()
    state = await start(again, "github")
    back = await again.get(
        "/console/oauth/github?" + urlencode({"state": state, "code": GITHUB_CODE})
    )
    assert back.status_code == 303, back.text
    home = _shows(await again.get("/console/"), "ann@example.com")
    assert "Welcome to M3O" not in home
    second = await site.call(
        "/customers/read", {"email": "ann@example.com"}, await site.admin_token()
    )
    assert second["customer"]["id"] == first["customer"]["id"]

    # A return this browser did not start is refused before the code is exchanged.
    exchanged = len(providers.fakes.google.token_requests)
    state = await start(site.browser(), "google")
    victim = site.browser()
    await victim.get("/console/login")
    forced = await victim.get(
        "/console/oauth/google?" + urlencode({"state": state, "code": GOOGLE_CODE})
    )
    assert forced.status_code == 403
    _shows(forced, "did not start in this browser")
    assert not victim.session
    assert len(providers.fakes.google.token_requests) == exchanged

    # A refusal at the provider is shown on the login page.
    denied_browser = site.browser()
    state = await start(denied_browser, "google")
    denied = await denied_browser.get(
        "/console/oauth/google?" + urlencode({"state": state, "error": "access_denied"})
    )
    assert denied.status_code == 400
    _shows(denied, "Signing in with Google did not work")
    assert not denied_browser.session


async def test_oauth_is_not_offered_unless_configured(site: Site) -> None:
    browser = site.browser()
    page = await browser.get("/console/login")
    assert "/console/login/google" not in page.text
    assert "Continue with" not in page.text
    for provider in ("google", "github", "other"):
        assert (await browser.get(f"/console/login/{provider}")).status_code == 404


async def test_the_admin_signs_in_on_the_same_page(site: Site) -> None:
    browser = site.browser()
    wrong = await _sign_in(browser, "admin", "not the admin password")
    assert wrong.status_code == 401
    assert 'role="alert"' in wrong.text and not browser.session
    signed_in = await _sign_in(browser, "admin", ADMIN_PASSWORD)
    assert signed_in.status_code == 303, signed_in.text
    home = await browser.get("/console/")
    assert 'href="/console/admin"' in home.text
    _shows(home, "admin", "Sign out")


async def test_next_never_leads_off_the_console(site: Site) -> None:
    person = await site.person("careful@example.com")
    browser = site.browser()
    attempts = (
        "//evil.example",
        "https://evil.example",
        "/console//evil.example",
        "https://evil.example/console/",
    )
    for attempt in attempts:
        page = await browser.get("/console/login?" + urlencode({"next": attempt}))
        assert _input(page, "next") == "/console/", attempt
    for attempt in attempts[:2]:
        signed_in = await browser.submit(
            "/console/login", {"email": person.email, "password": PASSWORD, "next": attempt}
        )
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/console/", attempt
    kept = await browser.submit(
        "/console/login", {"email": person.email, "password": PASSWORD, "next": "/console/usage"}
    )
    assert kept.headers["location"] == "/console/usage"


async def test_another_customers_address_and_tokens_are_refused(site: Site) -> None:
    ann = await site.person("ann@example.com")
    bob = await site.person("bob@example.com")
    bobs = site.browser(bob.token)
    home = _shows(await bobs.get("/console/"), bob.email)
    assert ann.email not in home

    # Bob's reset token does not reset Ann's password.
    await bobs.submit("/console/recover", {"email": bob.email})
    token = await _reset_token(site, bob.email)
    taken = await bobs.submit(
        "/console/reset",
        {"email": ann.email, "token": token, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert taken.status_code == 400
    _shows(taken, "The reset token is invalid")
    assert token not in taken.text
    assert (await _sign_in(site.browser(), ann.email, PASSWORD)).status_code == 303
    assert (await _sign_in(site.browser(), ann.email, NEW_PASSWORD)).status_code == 401

    # A code sent to one address does not create an account for another.
    browser = site.browser()
    await browser.submit("/console/signup", {"email": "carol@example.com"})
    await browser.submit("/console/signup", {"email": "dave@example.com"})
    code = await site.signup_code("carol@example.com")
    stolen = await browser.submit(
        "/console/signup/verify",
        {"email": "dave@example.com", "code": code, "password": PASSWORD, "confirm": PASSWORD},
    )
    assert stolen.status_code == 403
    assert not browser.session
    dave = await site.call(
        "/customers/read", {"email": "dave@example.com"}, await site.admin_token()
    )
    assert dave["customer"]["status"] != "verified"
