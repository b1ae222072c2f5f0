"""The admin pages: an admin finds a customer, credits them (once, however often the form
is sent), bans and unbans them and deletes everything of theirs, each change checked
through the platform API; a customer can use none of these pages or forms; bad amounts
and forms without their tokens get readable refusals."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import httpx
import pytest

from console.site import Browser, Person, Site, Text, until
from m3o.console.pages.admin import newest

pytestmark = pytest.mark.asyncio(loop_scope="module")

KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')


async def status(site: Site, path: str, body: Mapping[str, object], token: str) -> int:
    """The HTTP status of a platform API call."""
    headers = {"Authorization": f"Bearer {token}"}
    return (await site.api.post(path, json=dict(body), headers=headers)).status_code


async def balance_of(site: Site, person: Person) -> int:
    current = await site.call(
        "/balance/current", {"customer_id": person.id}, await site.admin_token()
    )
    return int(current.get("current_balance", 0))


async def settled(site: Site, person: Person, entries: int) -> int:
    """The person's balance once their ledger holds ``entries`` entries (the signup's promo
    credit is granted in the background)."""

    async def ledger() -> bool:
        listed = await site.call(
            "/balance/listAdjustments", {"customer_id": person.id}, await site.admin_token()
        )
        return len(listed.get("adjustments", [])) >= entries

    await until(ledger, f"{entries} ledger entries of {person.email}")
    return await balance_of(site, person)


async def status_of(site: Site, person: Person) -> str:
    read = await site.call("/customers/read", {"id": person.id}, await site.admin_token())
    return str(read["customer"]["status"])


async def credit_key(browser: Browser, person: Person) -> str:
    """The idempotency key of the credit form on the customer's page, as rendered now."""
    page = await browser.get(f"/console/admin/customers/{person.id}")
    assert page.status_code == 200, page.text
    found = KEY.search(page.text)
    assert found, page.text
    return found.group(1)


def alert(page: httpx.Response) -> str:
    found = re.search(r'role="alert">([^<]*)<', page.text)
    assert found, page.text
    return found.group(1)


async def test_an_admin_finds_credits_bans_unbans_and_deletes_a_customer(
    site_on_both: Site,
) -> None:
    site = site_on_both
    buyer = await site.person("buyer@example.com", funds=2_000_000)
    other = await site.person("other@example.com")
    admin = site.browser(await site.admin_token())
    url = f"/console/admin/customers/{buyer.id}"

    front = await admin.get("/console/admin")
    assert front.status_code == 200, front.text
    text = Text.of(front.text)
    assert text.index(other.email) < text.index(buyer.email)  # newest first
    assert 'href="/console/admin"' in front.text  # the Admin link, for admins

    for query in ("  Buyer@Example.com ", buyer.id):
        found = await admin.get("/console/admin", params={"q": query})
        assert found.status_code == 200
        matches = Text.of(found.text.split('id="matches-heading"')[1].split("</section>")[0])
        assert buyer.email in matches and other.email not in matches
        assert f'href="{url}"' in found.text
    missing = await admin.get("/console/admin", params={"q": "nobody@example.com"})
    assert "No customer has the email or ID" in Text.of(missing.text)

    page = Text.of((await admin.get(url)).text)
    assert buyer.email in page and buyer.id in page and "verified" in page
    assert "$2" in page and "Test funds" in page
    assert other.email not in page

    # The same form sent twice credits once.
    before = await settled(site, buyer, 2)
    key = await credit_key(admin, buyer)
    form = {"amount": "$12.50", "reason": "Sorry for the outage", "idempotency_key": key}
    for _ in range(2):
        sent = await admin.submit(f"{url}/credit", form)
        assert sent.status_code == 303, sent.text
        assert sent.headers["location"] == url
    assert await balance_of(site, buyer) == before + 12_500_000
    shown = Text.of((await admin.get(url)).text)
    assert "Credited $12.5" in shown
    assert shown.count("Sorry for the outage") == 1
    # A new form is a new credit; the customer sees both in their ledger.
    again = {**form, "idempotency_key": await credit_key(admin, buyer), "amount": "0.25"}
    assert (await admin.submit(f"{url}/credit", again)).status_code == 303
    assert await balance_of(site, buyer) == before + 12_750_000
    own = await site.call("/balance/listAdjustments", {}, buyer.token)
    assert [a["reference"] for a in own["adjustments"]].count("Sorry for the outage") == 2

    banned = await admin.submit(f"{url}/ban")
    assert banned.status_code == 303, banned.text
    assert await status_of(site, buyer) == "banned"
    assert await status(site, "/balance/current", {}, buyer.token) == 401
    signed_out = site.browser(buyer.token)
    assert buyer.email not in Text.of((await signed_out.get("/console/")).text)
    relogin = {"email": buyer.email, "password": buyer.password}
    assert await status(site, "/customers/login", relogin, "") == 401
    assert "Unban" in Text.of((await admin.get(url)).text)

    unbanned = await admin.submit(f"{url}/unban")
    assert unbanned.status_code == 303, unbanned.text
    assert await status_of(site, buyer) == "verified"
    again_unbanned = await admin.submit(f"{url}/unban")
    assert again_unbanned.status_code == 400
    assert "not banned" in Text.of(again_unbanned.text)

    confirm = await admin.get(f"{url}/delete")
    assert confirm.status_code == 200
    assert "Type the customer's email to confirm" in Text.of(confirm.text)
    wrong = await admin.submit(f"{url}/delete", {"confirm": other.email})
    assert wrong.status_code == 400
    assert buyer.email in alert(wrong)
    assert await status_of(site, buyer) == "verified"
    deleted = await admin.submit(f"{url}/delete", {"confirm": buyer.email.upper()})
    assert deleted.status_code == 303, deleted.text
    assert deleted.headers["location"] == "/console/admin"
    admin_token = await site.admin_token()
    assert await status(site, "/customers/read", {"id": buyer.id}, admin_token) == 404
    assert await balance_of(site, buyer) == 0
    assert await status_of(site, other) == "verified"
    after = await admin.get("/console/admin")
    assert "Deleted every record of buyer@example.com" in Text.of(after.text)
    assert buyer.email not in Text.of(after.text).replace("record of buyer@example.com", "")
    assert (await admin.get(url)).status_code == 404


async def test_a_customer_can_use_no_admin_page_or_form(site: Site) -> None:
    mallory = await site.person("mallory@example.com")
    victim = await site.person("victim@example.com", funds=1_000_000)
    home = await site.browser(mallory.token).get("/console/")
    assert mallory.email in Text.of(home.text)
    assert 'href="/console/admin"' not in home.text

    balances = (await settled(site, mallory, 1), await settled(site, victim, 2))
    url = f"/console/admin/customers/{victim.id}"
    own = f"/console/admin/customers/{mallory.id}"
    for path in ("/console/admin", "/console/admin?q=victim@example.com", url, f"{url}/delete"):
        browser = site.browser(mallory.token)
        refused = await browser.get(path)
        assert refused.status_code == 403, path
        assert "This page is for admins only." in Text.of(refused.text), path
        assert victim.email not in refused.text
        assert browser.session == mallory.token  # still signed in, as herself
    forms = {
        f"{own}/credit": {"amount": "100", "reason": "free money", "idempotency_key": "k" * 24},
        f"{url}/ban": {},
        f"{url}/delete": {"confirm": victim.email},
    }
    for path, fields in forms.items():
        browser = site.browser(mallory.token)
        sent = await browser.submit(path, fields, page="/console/login")
        assert sent.status_code == 403, path
    assert (await balance_of(site, mallory), await balance_of(site, victim)) == balances
    assert await status_of(site, victim) == "verified"
    # The services refuse the same calls made with the customer's token directly.
    credit_self = {
        "customer_id": mallory.id,
        "delta": 100_000_000,
        "reference": "free money",
        "idempotency_key": "mine",
    }
    assert await status(site, "/balance/increment", credit_self, mallory.token) == 403
    assert await status(site, "/customers/ban", {"id": victim.id}, mallory.token) == 403
    tenant = {"tenant_id": victim.id}
    assert await status(site, "/admin/deleteData", tenant, mallory.token) == 403
    assert await status(site, "/customers/list", {}, mallory.token) == 403
    assert await balance_of(site, mallory) == balances[0]

    anonymous = await site.browser().get("/console/admin")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/console/login?next=%2Fconsole%2Fadmin"


async def test_bad_credits_and_forms_without_their_tokens_are_refused_readably(
    site: Site,
) -> None:
    person = await site.person("credited@example.com")
    admin = site.browser(await site.admin_token())
    url = f"/console/admin/customers/{person.id}"
    before = await settled(site, person, 1)
    key = await credit_key(admin, person)
    bad = {
        "": "Enter an amount in dollars",
        "ten": "Enter an amount in dollars",
        "1.2.3": "Enter an amount in dollars",
        "-5": "more than $0",
        "0.00": "more than $0",
        "1.0000001": "at most 6 decimal places",
        "10000000.01": "at most $10,000,000",
        "99999999999999999999": "at most $10,000,000",
    }
    for amount, message in bad.items():
        fields = {"amount": amount, "reason": "Refund", "idempotency_key": key}
        refused = await admin.submit(f"{url}/credit", fields)
        assert refused.status_code == 400, amount
        assert message in alert(refused), amount
        assert f'value="{amount}"' in refused.text  # the form keeps what was typed
        assert KEY.search(refused.text).group(1) == key  # type: ignore[union-attr]
    no_reason = await admin.submit(f"{url}/credit", {"amount": "5", "idempotency_key": key})
    assert no_reason.status_code == 400 and "Enter a reason" in alert(no_reason)
    no_key = await admin.submit(f"{url}/credit", {"amount": "5", "reason": "Refund"})
    assert no_key.status_code == 400 and "expired" in alert(no_key)
    assert await balance_of(site, person) == before

    # A form used once, sent again with another amount, is refused and gets a new key.
    done = {"amount": "5", "reason": "Refund", "idempotency_key": key}
    assert (await admin.submit(f"{url}/credit", done)).status_code == 303
    reused = await admin.submit(f"{url}/credit", {**done, "amount": "6"})
    assert reused.status_code == 409
    assert "already used" in alert(reused)
    assert KEY.search(reused.text).group(1) != key  # type: ignore[union-attr]
    assert await balance_of(site, person) == before + 5_000_000

    # Without the CSRF token nothing is called.
    for path, fields in {
        f"{url}/credit": {"amount": "5", "reason": "Refund", "idempotency_key": "x" * 24},
        f"{url}/ban": {},
        f"{url}/delete": {"confirm": person.email},
    }.items():
        forged = await admin.client.post(path, data=fields)
        assert forged.status_code == 403, path
        assert "Form expired" in Text.of(forged.text)
    assert await balance_of(site, person) == before + 5_000_000
    assert await status_of(site, person) == "verified"

    unknown = await admin.get("/console/admin/customers/no-such-customer")
    assert unknown.status_code == 404
    assert "Customer not found" in Text.of(unknown.text)


@pytest.mark.parametrize("length", [0, 5, 99, 100, 101, 1000, 4097])
async def test_newest_reads_the_end_of_a_list_given_oldest_first(length: int) -> None:
    items = list(range(length))
    calls = 0

    async def page(limit: int, offset: int) -> Sequence[int]:
        nonlocal calls
        calls += 1
        return items[offset : offset + limit]

    assert await newest(page, 20) == items[::-1][:20]
    assert calls <= 2 + 2 * length.bit_length()
