"""Webhooks signed as Stripe signs them: the library's own verification accepts them."""

from __future__ import annotations

import re
import time

import pytest
import stripe

from support.stripe_fake import API_VERSION, StripeFake, build_event, event_payload, sign_webhook

SECRET = "whsec_test_secret"


@pytest.fixture
def charge_event(client: stripe.StripeClient, stripe_fake: StripeFake) -> bytes:
    customer = client.v1.customers.create({"email": "ada@example.com"})
    client.v1.payment_intents.create(
        {
            "amount": 2000,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )
    (event,) = stripe_fake.events_of("charge.succeeded")
    return event_payload(event)


def test_the_header_is_a_timestamp_and_a_hex_hmac_sha256() -> None:
    header = sign_webhook(b"{}", SECRET, timestamp=1_800_000_000)

    assert re.fullmatch(r"t=1800000000,v1=[0-9a-f]{64}", header)


def test_the_library_accepts_a_signed_event_of_the_fake(charge_event: bytes) -> None:
    event = stripe.Webhook.construct_event(
        charge_event, sign_webhook(charge_event, SECRET), SECRET, tolerance=300
    )

    assert event.type == "charge.succeeded"
    assert event.api_version == stripe.api_version == API_VERSION
    assert event.livemode is False and event.id.startswith("evt_")
    charge = event.data.object
    assert (charge["object"], charge["amount"], charge["status"]) == ("charge", 2000, "succeeded")


def test_a_tampered_body_is_rejected(charge_event: bytes) -> None:
    header = sign_webhook(charge_event, SECRET)

    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            charge_event.replace(b"2000", b"9000"), header, SECRET, tolerance=300
        )


def test_another_secret_is_rejected(charge_event: bytes) -> None:
    header = sign_webhook(charge_event, "whsec_other")

    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(charge_event, header, SECRET, tolerance=300)


def test_a_signature_older_than_the_tolerance_is_rejected(charge_event: bytes) -> None:
    header = sign_webhook(charge_event, SECRET, timestamp=int(time.time()) - 301)

    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        stripe.Webhook.construct_event(charge_event, header, SECRET, tolerance=300)


def test_an_event_can_be_built_from_any_object() -> None:
    event = build_event("invoice.paid", {"id": "in_1", "object": "invoice"}, created=1_800_000_000)

    assert event["object"] == "event" and event["type"] == "invoice.paid"
    assert event["created"] == 1_800_000_000 and event["livemode"] is False
    assert event["data"] == {"object": {"id": "in_1", "object": "invoice"}}
    payload = event_payload(event)
    parsed = stripe.Webhook.construct_event(payload, sign_webhook(payload, SECRET), SECRET)
    assert parsed.id == event["id"]


def test_the_fake_names_the_request_behind_an_event(
    client: stripe.StripeClient, stripe_fake: StripeFake
) -> None:
    client.v1.customers.create({"email": "ada@example.com"}, {"idempotency_key": "customer:c1"})

    (event,) = stripe_fake.events_of("customer.created")

    assert event["request"]["idempotency_key"] == "customer:c1"
    assert event["request"]["id"].startswith("req_")
    assert client.v1.events.retrieve(event["id"]).type == "customer.created"
