"""The API keys pages: creating a key shows its secret once and the secret works, the list
never shows it, revoking and rolling stop the old secret, bad forms are answered readably,
and one customer can neither see nor change another's keys."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from console.site import Browser, Site, Text, until

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET = re.compile(r'<code id="new-key">(m3o_[0-9A-Za-z]+)</code>')
ROWS = re.compile(r"<tbody>(.*?)</tbody>", re.S)


async def hello(site: Site, key: str) -> httpx.Response:
    return await site.api.post(
        "/v1/helloworld/call",
        json={"name": "Alice"},
        headers={"Authorization": f"Bearer {key}"},
    )


async def refused(site: Site, key: str) -> bool:
    return (await hello(site, key)).status_code == 401


async def listed(site: Site, token: str) -> list[dict[str, Any]]:
    answer = await site.call("/v1/api/keys/list", {}, token)
    return list(answer.get("api_keys", []))


def secret_of(page: httpx.Response) -> str:
    found = SECRET.search(page.text)
    assert found, page.text
    return found.group(1)


def rows(page: httpx.Response) -> int:
    body = ROWS.search(page.text)
    return body.group(1).count("<tr>") if body else 0


async def create(browser: Browser, description: str, *scopes: str, **more: str) -> httpx.Response:
    return await browser.submit(
        "/console/keys", {"description": description, "scope": list(scopes), **more}
    )


async def test_a_key_is_shown_once_works_is_listed_without_its_secret_and_is_revoked(
    site_on_both: Site,
) -> None:
    site = site_on_both
    person = await site.person("keys@example.com")
    browser = site.browser(person.token)

    empty = await browser.get("/console/keys")
    assert empty.status_code == 200
    text = Text.of(empty.text)
    assert "You have no keys yet" in text and "All APIs" in text
    assert '<label for="scope-1">helloworld</label>' in empty.text
    assert "Create key" in text

    made = await create(browser, "laptop", "helloworld")
    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store"
    secret = secret_of(made)
    assert '<button type="button" data-copy="new-key">Copy</button>' in made.text
    shown = Text.of(made.text)
    assert "shown only this once" in shown
    assert "/v1/helloworld/call" in shown and f"Bearer {secret}" in shown

    answer = await hello(site, secret)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"message": "Hello Alice"}

    [key] = await listed(site, person.token)
    assert key["description"] == "laptop" and key["scopes"] == ["helloworld"]
    page = await browser.get("/console/keys")
    assert secret not in page.text
    assert rows(page) == 1
    listing = Text.of(page.text)
    assert "laptop" in listing and "helloworld" in listing and "Active" in listing
    assert page.text.count(">Revoke</button>") == 1

    async def last_seen() -> int:
        return int((await listed(site, person.token))[0].get("last_seen", 0))

    seen = await until(last_seen, "the key's last use")
    shown_seen = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seen))
    assert shown_seen in Text.of((await browser.get("/console/keys")).text)

    revoked = await browser.submit("/console/keys/revoke", {"id": key["id"]})
    assert revoked.status_code == 303
    assert revoked.headers["location"] == "/console/keys"
    after = await browser.get("/console/keys")
    assert "The key is revoked" in Text.of(after.text)
    assert rows(after) == 0 and "laptop" not in Text.of(after.text)
    assert await listed(site, person.token) == []
    await until(lambda: refused(site, secret), "the revoked key refused")


async def test_all_apis_an_expiry_and_rolling_a_key(site: Site) -> None:
    person = await site.person("roll@example.com")
    browser = site.browser(person.token)
    made = await create(browser, "server", "helloworld", "*", expires="30d")
    assert made.status_code == 201, made.text
    old = secret_of(made)
    [key] = await listed(site, person.token)
    assert key["scopes"] == ["*"]
    assert abs(int(key["expires"]) - (time.time() + 30 * 24 * 3600)) < 120
    page = Text.of((await browser.get("/console/keys")).text)
    assert "All APIs" in page and "until " in page

    rolled = await browser.submit("/console/keys/roll", {"id": key["id"]})
    assert rolled.status_code == 200, rolled.text
    new = secret_of(rolled)
    assert new != old
    assert "previous secret no longer works" in Text.of(rolled.text)
    assert (await hello(site, new)).status_code == 200
    await until(lambda: refused(site, old), "the rolled key's old secret refused")
    [same] = await listed(site, person.token)
    assert same["id"] == key["id"] and same["scopes"] == ["*"]
    assert new not in (await browser.get("/console/keys")).text


async def test_bad_forms_are_answered_on_the_page_and_forged_or_anonymous_ones_refused(
    site: Site,
) -> None:
    person = await site.person("forms@example.com")
    browser = site.browser(person.token)

    no_description = await create(browser, "  ", "helloworld")
    assert no_description.status_code == 400
    assert 'role="alert"' in no_description.text
    assert "Enter a description" in Text.of(no_description.text)
    assert 'value="helloworld" checked' in no_description.text  # the choice is kept

    no_scope = await create(browser, "phone")
    assert no_scope.status_code == 400
    assert "Choose the APIs the key may call" in Text.of(no_scope.text)
    assert 'value="phone"' in no_scope.text

    unknown = await create(browser, "phone", "nosuchapi")
    assert unknown.status_code == 403
    assert "Not allowed to generate a key with requested scopes" in Text.of(unknown.text)

    odd_expiry = await create(browser, "phone", "helloworld", expires="forever")
    assert odd_expiry.status_code == 400
    assert "Choose when the key stops working" in Text.of(odd_expiry.text)

    nameless = await browser.submit("/console/keys/revoke", {"id": ""})
    assert nameless.status_code == 400
    assert "No key was named" in Text.of(nameless.text)

    # A form without the browser's CSRF token changes nothing.
    forged = await browser.client.post(
        "/console/keys", data={"description": "forged", "scope": "helloworld"}
    )
    assert forged.status_code == 403
    assert "Form expired" in Text.of(forged.text)
    wrong = await browser.client.post(
        "/console/keys",
        data={"description": "forged", "scope": "helloworld", "csrf_token": "x" * 43},
    )
    assert wrong.status_code == 403
    assert await listed(site, person.token) == []

    # An admin has no keys of their own: told where keys are managed instead.
    admin = await site.browser(await site.admin_token()).get("/console/keys")
    assert admin.status_code == 200
    assert "admin pages" in Text.of(admin.text) and "Create key" not in admin.text

    # Nobody signed in: sent to the login page, and back here after.
    anonymous = site.browser()
    page = await anonymous.get("/console/keys")
    assert page.status_code == 303
    assert page.headers["location"] == "/console/login?next=%2Fconsole%2Fkeys"
    posted = await anonymous.submit(
        "/console/keys", {"description": "x", "scope": "helloworld"}, page="/console/login"
    )
    assert posted.status_code == 303
    assert posted.headers["location"].startswith("/console/login")


async def test_a_customer_neither_sees_nor_changes_another_customers_keys(site: Site) -> None:
    owner = await site.person("owner@example.com")
    other = await site.person("other@example.com")
    theirs = await site.call(
        "/v1/api/keys/generate",
        {"scopes": ["helloworld"], "description": "owner's build server"},
        owner.token,
    )
    key_id, secret = theirs["api_key_id"], theirs["api_key"]

    browser = site.browser(other.token)
    await create(browser, "mine", "helloworld")
    page = await browser.get("/console/keys")
    assert rows(page) == 1
    assert "owner's build server" not in Text.of(page.text) and key_id not in page.text

    for action in ("revoke", "roll"):
        answer = await browser.submit(f"/console/keys/{action}", {"id": key_id})
        assert answer.status_code == 404, action
        assert 'role="alert"' in answer.text
        assert "not found among your keys" in Text.of(answer.text)
        assert "owner's build server" not in Text.of(answer.text)

    assert (await hello(site, secret)).status_code == 200
    [kept] = await listed(site, owner.token)
    assert kept["id"] == key_id
