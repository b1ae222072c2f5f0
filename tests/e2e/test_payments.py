"""Taking money on `m3o serve`, with the local fake of Stripe's API on a real port.

A customer pays through Checkout; Stripe's events reach ``/stripe/webhook`` signed as
Stripe signs them, the charge among them many times and some at once: the balance is
credited once, and `m3o balance` shows the credit and its ledger entry (receipt included).
The customer then saves a card through a setup Checkout, charges it, and subscribes free ->
pro -> business -> free: after each step their key gets that tier's rate limit and monthly
fair-use quota on its next calls through ``/v1``, and `m3o balance check` stays clean.
"""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.serving import CODE_SENTENCE, M3O, Platform, eventually, serving
from support.stripe_fake import StripeFake, event_payload, sign_webhook

pytestmark = pytest.mark.e2e

SIGNING_SECRET = "whsec_e2e_signing_secret"
EMAIL = "payer@example.com"
PASSWORD = "a payer password"
UNITS_PER_CENT = 10_000
MARGIN = 20
TOP_UP = 2_000  # cents
CHARGE = 1_500
PRO_PRICE = 2_500
BUSINESS_PRICE = 10_000
RATE_LIMITS = {"free": 7, "pro": 17, "business": 27}
QUOTAS = {"free": 2, "pro": 4, "business": 6}
"""Free calls a month to free endpoints; a tier's quota counts the calls made so far."""
PROMO = 10_000  # signup.promoCredit's default


@pytest.fixture
def platform(tmp_path: Path, stripe_fake: StripeFake) -> Iterator[Platform]:
    stripe_fake.add_price(unit_amount=PRO_PRICE, price_id="price_pro", nickname="Pro")
    stripe_fake.add_price(
        unit_amount=BUSINESS_PRICE, price_id="price_business", nickname="Business"
    )
    env = {
        "M3O_STRIPE__API_KEY": stripe_fake.api_key,
        "M3O_STRIPE__SIGNING_SECRET": SIGNING_SECRET,
        "M3O_STRIPE__API_BASE": stripe_fake.base_url,
        "M3O_STRIPE__SUCCESS_URL": "http://console.test/paid",
        "M3O_STRIPE__CANCEL_URL": "http://console.test/cancelled",
        "M3O_BALANCE__MARGIN": str(MARGIN),
        "M3O_BILLING__TIERS__PRO__NAME": "Pro",
        "M3O_BILLING__TIERS__PRO__STRIPE_PRICE_ID": "price_pro",
        "M3O_BILLING__TIERS__BUSINESS__NAME": "Business",
        "M3O_BILLING__TIERS__BUSINESS__STRIPE_PRICE_ID": "price_business",
        **{f"M3O_V1__RATE_LIMITS__{tier.upper()}": str(n) for tier, n in RATE_LIMITS.items()},
        **{f"M3O_USAGE__QUOTAS__{tier.upper()}": str(n) for tier, n in QUOTAS.items()},
    }
    yield from serving(tmp_path, env)


class Webhooks:
    """Stripe's side of the webhook: each event the fake recorded, delivered once in order
    (as Stripe sends them), and any of them again on demand."""

    def __init__(self, platform: Platform, stripe: StripeFake) -> None:
        self._platform = platform
        self._stripe = stripe
        self._sent = 0

    def deliver(self, event: dict[str, Any]) -> httpx.Response:
        payload = event_payload(event)
        return httpx.post(
            f"{self._platform.url}/stripe/webhook",
            content=payload,
            headers={
                "Stripe-Signature": sign_webhook(payload, SIGNING_SECRET),
                "Content-Type": "application/json",
            },
            timeout=30,
        )

    def deliver_new(self) -> list[dict[str, Any]]:
        """Every event recorded since the last call, each answered 2xx."""
        events = self._stripe.events[self._sent :]
        for event in events:
            response = self.deliver(event)
            assert response.status_code == 200, (event["type"], response.text)
        self._sent += len(events)
        return events


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _m3o(platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*M3O, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=platform.data_dir,
    )


def _customer(platform: Platform) -> str:
    """A signed-up customer's access token, once their promo credit has arrived."""
    _ok(platform.post("/signup/user", {"email": EMAIL}))
    code = platform.latest_email(EMAIL, "verification", CODE_SENTENCE)
    _ok(platform.post("/signup/verify", {"email": EMAIL, "token": code, "secret": PASSWORD}))
    login = _ok(platform.post("/customers/login", {"email": EMAIL, "password": PASSWORD}))
    token = str(login["token"]["access_token"])
    eventually(lambda: _ledger(platform, token)["current_balance"] == PROMO, "the promo credit")
    return token


def _ledger(platform: Platform, token: str) -> dict[str, Any]:
    """What `m3o balance` shows the customer."""
    shown = _m3o(platform, "balance", "--address", platform.url, "--token", token, "--limit", "100")
    assert shown.returncode == 0, shown.stderr
    ledger: dict[str, Any] = json.loads(shown.stdout)
    return ledger


def _credits(ledger: dict[str, Any]) -> list[dict[str, Any]]:
    """The ledger's entries for Stripe charges."""
    return [entry for entry in ledger["adjustments"] if "charge_id" in entry.get("meta", {})]


class Key:
    """The customer's API key, calling helloworld's free Call through /v1."""

    def __init__(self, platform: Platform, token: str) -> None:
        generated = _ok(
            platform.post(
                "/v1/api/keys/generate", {"scopes": ["helloworld"], "description": "pay"}, token
            )
        )
        self._url = f"{platform.url}/v1/helloworld/call"
        self._key = generated["api_key"]
        self.free = 0
        """Calls charged ``free`` so far this month."""

    def call(self) -> httpx.Response:
        response = httpx.post(
            self._url,
            json={"name": "Payer"},
            headers={"Authorization": f"Bearer {self._key}"},
            timeout=30,
        )
        assert response.status_code in (200, 429), response.text
        if response.status_code == 200 and response.headers["X-M3O-Price"] == "free":
            self.free += 1
        return response

    def feels(self, tier: str) -> None:
        """Calls until one is answered under ``tier``'s rate limit, then until one is not
        free: the month's free calls are then ``tier``'s quota, or what was used already
        when that is more."""
        limit = str(RATE_LIMITS[tier])
        eventually(
            lambda: self.call().headers.get("RateLimit-Limit") == limit, f"the {tier} rate limit"
        )
        while True:
            response = self.call()
            if response.status_code == 429:  # the rate limit: a moment later
                time.sleep(0.2)
                continue
            assert response.headers["RateLimit-Limit"] == limit
            if response.headers["X-M3O-Price"] != "free":
                break
        assert self.free == max(QUOTAS[tier], self.free), (tier, self.free)
        assert self.free >= QUOTAS[tier], (tier, self.free)


def test_a_customer_pays_saves_a_card_charges_it_and_changes_tiers(
    platform: Platform, stripe_fake: StripeFake
) -> None:
    token = _customer(platform)
    webhooks = Webhooks(platform, stripe_fake)

    # Top up through Checkout; Stripe retries the charge's event, some at once.
    session = _ok(platform.post("/billing/createCheckoutSession", {"amount": TOP_UP}, token))
    assert session["url"]
    stripe_fake.complete_checkout(session["id"])
    delivered = webhooks.deliver_new()
    [charge] = [event for event in delivered if event["type"] == "charge.succeeded"]
    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        again = list(pool.map(lambda _: webhooks.deliver(charge).status_code, range(10)))
    assert again == [200] * 10

    paid = PROMO + TOP_UP * UNITS_PER_CENT
    eventually(lambda: _ledger(platform, token)["current_balance"] == paid, "the credit")
    [credit] = _credits(_ledger(platform, token))
    assert int(credit["delta"]) == TOP_UP * UNITS_PER_CENT
    assert credit["reference"] == "Credit added"
    assert credit["meta"]["receipt_url"] == charge["data"]["object"]["receipt_url"]

    # Save a card through a setup Checkout, then charge it.
    setup = _ok(platform.post("/billing/createCheckoutSession", {"save_card": True}, token))
    stripe_fake.complete_checkout(setup["id"], stripe_fake.add_card(last4="4444"))
    webhooks.deliver_new()
    [card] = _ok(platform.post("/billing/listCards", {}, token))["cards"]
    assert card["last_four"] == "4444"
    charged = _ok(
        platform.post(
            "/billing/chargeCard",
            {"id": card["id"], "amount": CHARGE, "idempotency_key": "e2e-charge"},
            token,
        )
    )
    assert charged["status"] == "succeeded"
    webhooks.deliver_new()
    paid += CHARGE * UNITS_PER_CENT
    eventually(lambda: _ledger(platform, token)["current_balance"] == paid, "the charge")

    # Tiers: each change is felt by the key on its next calls.
    key = Key(platform, token)
    key.feels("free")
    for tier in ("pro", "business"):
        _ok(platform.post("/billing/subscribeTier", {"id": tier, "card_id": card["id"]}, token))
        webhooks.deliver_new()
        account = _ok(platform.post("/billing/readAccount", {}, token))["billing_account"]
        assert account["subscriptions"] == [{"id": tier}]
        key.feels(tier)
    _ok(platform.post("/billing/subscribeTier", {"id": "free"}, token))
    webhooks.deliver_new()
    key.feels("free")

    # Each subscription was ended at Stripe when the next began; none is left running.
    created = [
        e["data"]["object"]["id"] for e in stripe_fake.events_of("customer.subscription.created")
    ]
    assert len(created) == 2
    assert [stripe_fake.get(s)["status"] for s in created] == ["canceled", "canceled"]

    # The credits: the top-up, the charge, and each subscription's invoice less the margin
    # (calls beyond the quotas cost a unit each, so the balance itself is not compared).
    expected = [
        TOP_UP,
        CHARGE,
        PRO_PRICE * (100 - MARGIN) // 100,
        BUSINESS_PRICE * (100 - MARGIN) // 100,
    ]

    def credited() -> list[int]:
        return [int(entry["delta"]) for entry in _credits(_ledger(platform, token))]

    eventually(lambda: len(credited()) == len(expected), "the subscription credits")
    assert credited() == [cents * UNITS_PER_CENT for cents in expected]
    checked = _m3o(platform, "balance", "check", "--data-dir", str(platform.data_dir))
    assert checked.returncode == 0, checked.stdout + checked.stderr
