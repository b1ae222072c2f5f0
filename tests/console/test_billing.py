"""The balance and billing pages against the platform and the Stripe fake: the balance and
its ledger, top-ups that go on to Stripe Checkout, saved cards saved through Checkout,
listed, charged (once per form, however often it is sent) and removed, tier changes, past
payments, and the pages when payments are not configured. One customer never sees or
touches another's ledger or cards, and forms without their CSRF token change nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from console.site import Browser, Person, Site, Text, open_site, until
from support.stripe_fake import StripeFake, event_payload, sign_webhook

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHECKOUT = "https://checkout.stripe.com/"
SIGNING_SECRET = "whsec_console_billing"
KEY_FIELD = re.compile(r'name="idempotency_key" value="([^"]+)"')


@pytest_asyncio.fixture(loop_scope="module")
async def paying_site(tmp_path: Path, stripe_fake: StripeFake) -> AsyncIterator[Site]:
    """The site with a paid tier, Pro, paid by the fake's recurring price ``price_pro``,
    and Stripe's webhooks signed with ``SIGNING_SECRET``."""
    stripe_fake.add_price(unit_amount=2_500, price_id="price_pro", nickname="Pro")
    settings = {
        "M3O_BILLING__TIERS__PRO__NAME": "Pro",
        "M3O_BILLING__TIERS__PRO__PRICE": "$25/month",
        "M3O_BILLING__TIERS__PRO__STRIPE_PRICE_ID": "price_pro",
        "M3O_STRIPE__SIGNING_SECRET": SIGNING_SECRET,
    }
    async with open_site(tmp_path, "sqlite", stripe_fake, settings) as opened:
        yield opened


@pytest_asyncio.fixture(loop_scope="module")
async def unpaid_site(tmp_path: Path, stripe_fake: StripeFake) -> AsyncIterator[Site]:
    """The site with no Stripe key: payments are not configured."""
    async with open_site(tmp_path, "sqlite", stripe_fake, {"M3O_STRIPE__API_KEY": ""}) as opened:
        yield opened


async def _ledger(site: Site, person: Person, entries: int) -> list[dict[str, Any]]:
    """The person's visible ledger once it has ``entries`` entries (the promo credit arrives
    through the bus)."""

    async def listed() -> list[dict[str, Any]]:
        answer = await site.call("/balance/listAdjustments", {}, person.token)
        found: list[dict[str, Any]] = answer.get("adjustments", [])
        return found if len(found) >= entries else []

    return await until(listed, f"{entries} ledger entries of {person.email}")


def _checkout_session(response: httpx.Response, stripe_fake: StripeFake) -> dict[str, Any]:
    """The Checkout session a 303 to Stripe's page leads to."""
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(CHECKOUT), location
    return stripe_fake.get(location.rsplit("/", 1)[-1])


async def _saved_card(
    site: Site, browser: Browser, stripe_fake: StripeFake, person: Person, card: str
) -> str:
    """Saves ``card`` (a fake payment method) through the page's "Save a card" Checkout;
    returns its id as billing lists it."""
    saving = await browser.submit("/console/billing/cards/save", page="/console/billing")
    session = _checkout_session(saving, stripe_fake)
    assert session["mode"] == "setup"
    stripe_fake.complete_checkout(session["id"], card)
    listed = await site.call("/billing/listCards", {}, person.token)
    last4 = stripe_fake.get(card)["card"]["last4"]
    return next(c["id"] for c in listed["cards"] if c["last_four"] == last4)


def _form_key(html: str) -> str:
    found = KEY_FIELD.search(html)
    assert found, "the charge form has no idempotency key"
    return found.group(1)


async def test_the_balance_shows_the_ledger_and_tops_up_through_checkout(
    site_on_both: Site, stripe_fake: StripeFake
) -> None:
    site = site_on_both
    ann = await site.person("ann@example.com", funds=5_000_000)
    await _ledger(site, ann, 2)  # the admin's credit and the promo credit ($0.01)
    browser = site.browser(ann.token)

    page = await browser.get("/console/balance")
    assert page.status_code == 200
    text = Text.of(page.text)
    assert "Current balance $5.01" in text
    assert "Test funds $5" in text and "Welcome to M3O" in text
    assert "Add $20" in text and "Top up" in text

    # A preset and a typed amount go on to Checkout for that many cents.
    preset = await browser.submit("/console/balance/topup", {"amount": "20"})
    assert _checkout_session(preset, stripe_fake)["amount_total"] == 2_000
    typed = await browser.submit("/console/balance/topup", {"amount": "$12.50"})
    assert _checkout_session(typed, stripe_fake)["amount_total"] == 1_250

    # Amounts refused on the form, with what was typed kept, and nothing sent to Stripe.
    sessions = len(stripe_fake.requests_to("POST", "/v1/checkout/sessions"))
    refused = {
        "": "Enter an amount in dollars, such as 25 or 12.50.",
        "twenty": "Enter an amount in dollars",
        "1e999999999": "Enter an amount in dollars",
        "0": "The amount must be more than $0.",
        "-5": "The amount must be more than $0.",
        "1.234": "Use at most 2 decimal places: the smallest amount is $0.01.",
        "20000000": "The amount can be at most $10,000,000.",
        "5": "The amount must be at least $10.",  # the service's minimum
    }
    for amount, message in refused.items():
        answer = await browser.submit("/console/balance/topup", {"amount": amount})
        assert answer.status_code == 400, amount
        assert 'role="alert"' in answer.text
        assert message in Text.of(answer.text), (amount, Text.of(answer.text))
        assert "Current balance $5.01" in Text.of(answer.text)
    assert len(stripe_fake.requests_to("POST", "/v1/checkout/sessions")) == sessions

    # Back from Checkout; a page number that is not one.
    back = Text.of((await browser.get("/console/balance?paid=1")).text)
    assert "your payment is being processed" in back
    for bad in ("0", "x", "-1"):
        assert (await browser.get(f"/console/balance?page={bad}")).status_code == 400
    assert "No more entries." in Text.of((await browser.get("/console/balance?page=2")).text)

    # Another customer sees their own ledger only.
    bob = await site.person("bob@example.com")
    await _ledger(site, bob, 1)
    theirs = Text.of((await site.browser(bob.token).get("/console/balance")).text)
    assert "Current balance $0.01" in theirs
    assert "Test funds" not in theirs and "$5.01" not in theirs

    # A form without this browser's CSRF token starts no payment.
    before = len(stripe_fake.requests_to("POST", "/v1/checkout/sessions"))
    forged = await browser.client.post(
        "/console/balance/topup", data={"amount": "20", "csrf_token": "x" * 43}
    )
    assert forged.status_code == 403
    assert len(stripe_fake.requests_to("POST", "/v1/checkout/sessions")) == before

    # Signed out: to the login page.
    anonymous = await site.browser().get("/console/balance")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/console/login")


async def test_cards_are_saved_charged_once_per_form_and_removed(
    site: Site, stripe_fake: StripeFake
) -> None:
    ann = await site.person("cards@example.com")
    browser = site.browser(ann.token)
    empty = Text.of((await browser.get("/console/billing")).text)
    assert "No saved cards." in empty and "No payments yet." in empty and "Free" in empty

    card = await _saved_card(site, browser, stripe_fake, ann, stripe_fake.add_card(last4="4444"))
    secure = await _saved_card(
        site,
        browser,
        stripe_fake,
        ann,
        stripe_fake.add_card(outcome="requires_action", last4="3184"),
    )
    page = await browser.get("/console/billing")
    text = Text.of(page.text)
    assert "Card ending 4444" in text and "Card ending 3184" in text
    key = _form_key(page.text)
    assert _form_key((await browser.get("/console/billing")).text) != key  # one per form

    # The same form sent twice charges once.
    fields = {"card": card, "amount": "15", "idempotency_key": key}
    for _ in range(2):
        charged = await browser.submit("/console/billing/charge", fields)
        assert charged.status_code == 303, charged.text
    payments = (await site.call("/billing/listPayments", {}, ann.token))["payments"]
    assert [(p["amount"], p["status"]) for p in payments] == [(1500, "succeeded")]
    shown = Text.of((await browser.get("/console/billing")).text)
    assert "The card was charged $15:" in shown
    assert "succeeded $15" in shown.split("Payments")[-1]

    # A card that needs 3-D Secure, and amounts refused on the form.
    again = _form_key((await browser.get("/console/billing")).text)
    asked = await browser.submit(
        "/console/billing/charge", {"card": secure, "amount": "20", "idempotency_key": again}
    )
    assert asked.status_code == 200
    assert "3-D Secure" in Text.of(asked.text) and 'role="alert"' in asked.text
    for amount, message in {"ten": "Enter an amount in dollars", "5": "at least $10."}.items():
        refused = await browser.submit(
            "/console/billing/charge",
            {"card": card, "amount": amount, "idempotency_key": _form_key(asked.text)},
        )
        assert refused.status_code == 400
        assert message in Text.of(refused.text)
        assert f'value="{amount}"' in refused.text  # kept on the form
    # Neither the unconfirmed payment nor the refused amounts charged anything.
    assert len((await site.call("/billing/listPayments", {}, ann.token))["payments"]) == 1

    # Another customer neither sees nor touches these cards.
    bob = await site.person("other-cards@example.com")
    intruder = site.browser(bob.token)
    theirs = await intruder.get("/console/billing")
    assert "4444" not in theirs.text and card not in theirs.text and "$15" not in theirs.text
    removed = await intruder.submit("/console/billing/cards/remove", {"card": card})
    assert removed.status_code == 403
    assert "Card does not belong to user" in Text.of(removed.text)
    stolen = await intruder.submit(
        "/console/billing/charge",
        {"card": card, "amount": "15", "idempotency_key": "a-key-of-their-own"},
    )
    assert stolen.status_code == 403
    assert len((await site.call("/billing/listCards", {}, ann.token))["cards"]) == 2

    # No CSRF token: the card stays.
    forged = await browser.client.post("/console/billing/cards/remove", data={"card": card})
    assert forged.status_code == 403
    assert len((await site.call("/billing/listCards", {}, ann.token))["cards"]) == 2

    gone = await browser.submit("/console/billing/cards/remove", {"card": card})
    assert gone.status_code == 303
    after = Text.of((await browser.get("/console/billing")).text)
    assert "The card was removed." in after and "Card ending 4444" not in after
    listed = (await site.call("/billing/listCards", {}, ann.token))["cards"]
    assert [c["last_four"] for c in listed] == ["3184"]


async def _webhooks(site: Site, stripe_fake: StripeFake) -> None:
    """Stripe delivers every event it recorded to the platform's webhook, in order."""
    for event in stripe_fake.events:
        payload = event_payload(event)
        answer = await site.api.post(
            "/stripe/webhook",
            content=payload,
            headers={
                "Stripe-Signature": sign_webhook(payload, SIGNING_SECRET),
                "Content-Type": "application/json",
            },
        )
        assert answer.status_code == 200, (event["type"], answer.text)


async def test_a_top_up_paid_at_checkout_reaches_the_balance_and_the_tier_changes(
    paying_site: Site, stripe_fake: StripeFake
) -> None:
    site = paying_site
    ann = await site.person("tier@example.com")
    browser = site.browser(ann.token)
    page = Text.of((await browser.get("/console/billing")).text)
    assert "Your tier: Free" in page and "Pro ($25/month)" in page

    unpaid = await browser.submit("/console/billing/tier", {"tier": "pro", "card": ""})
    assert unpaid.status_code == 400
    assert "Choose the card that pays for this tier." in Text.of(unpaid.text)
    unknown = await browser.submit("/console/billing/tier", {"tier": "gold", "card": ""})
    assert unknown.status_code == 400
    assert "Subscription ID not valid" in Text.of(unknown.text)

    card = await _saved_card(site, browser, stripe_fake, ann, stripe_fake.add_card())
    changed = await browser.submit("/console/billing/tier", {"tier": "pro", "card": card})
    assert changed.status_code == 303, changed.text
    assert "Your tier: Pro" in Text.of((await browser.get("/console/billing")).text)
    account = await site.call("/billing/readAccount", {}, ann.token)
    assert account["billing_account"]["subscriptions"] == [{"id": "pro"}]

    # A top-up paid on Stripe's page is credited by the webhook, once, with its receipt
    # (and so is Pro's first invoice).
    await _ledger(site, ann, 1)
    paying = await browser.submit("/console/balance/topup", {"amount": "20"})
    stripe_fake.complete_checkout(_checkout_session(paying, stripe_fake)["id"])
    await _webhooks(site, stripe_fake)
    await _webhooks(site, stripe_fake)  # delivered again: credited once
    await _ledger(site, ann, 3)  # the promo, Pro's first invoice and the top-up
    page = await browser.get("/console/balance?paid=1")
    text = Text.of(page.text)
    assert "Current balance $45.01" in text
    assert "Subscription credit added" in text and "Credit added" in text
    assert text.count("Receipt") == 2
    payments = Text.of((await browser.get("/console/billing")).text).split("Payments")[-1]
    assert "succeeded $20" in payments


async def test_without_payments_the_balance_shows_and_payments_say_so(
    unpaid_site: Site,
) -> None:
    site = unpaid_site
    ann = await site.person("unpaid@example.com", funds=2_000_000)
    await _ledger(site, ann, 2)
    browser = site.browser(ann.token)

    balance = await browser.get("/console/balance")
    text = Text.of(balance.text)
    assert "Current balance $2.01" in text and "Test funds" in text
    assert "Payments are not configured." in text
    assert "/console/balance/topup" not in balance.text

    billing = await browser.get("/console/billing")
    assert billing.status_code == 200
    text = Text.of(billing.text)
    assert "Your tier: Free" in text and "Payments are not configured." in text
    assert "/console/billing/charge" not in billing.text

    # A form sent all the same gets the service's answer, readably.
    refused = await browser.submit("/console/balance/topup", {"amount": "20"})
    assert refused.status_code == 503
    assert "Payments are not configured" in Text.of(refused.text)
    assert 'role="alert"' in refused.text
