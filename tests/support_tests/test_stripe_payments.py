"""Customers, cards, Checkout, setup and payment intents and charges, through the library."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from support.stripe_fake import StripeFake


def test_attached_cards_are_listed_with_brand_last4_and_expiry(
    client: stripe.StripeClient, customer: stripe.Customer, stripe_fake: StripeFake
) -> None:
    mastercard = stripe_fake.add_card(brand="mastercard", last4="4444", exp_month=3, exp_year=2031)
    client.v1.payment_methods.attach(mastercard, {"customer": customer.id})
    visa = client.v1.payment_methods.attach("pm_card_visa", {"customer": customer.id})

    listed = client.v1.payment_methods.list({"customer": customer.id, "type": "card"}).data
    nested = client.v1.customers.payment_methods.list(customer.id).data

    assert [pm.id for pm in listed] == [visa.id, mastercard] == [pm.id for pm in nested]
    card = listed[1].card
    assert card is not None
    assert (card.brand, card.last4, card.exp_month, card.exp_year) == (
        "mastercard",
        "4444",
        3,
        2031,
    )
    assert [
        e["data"]["object"]["id"] for e in stripe_fake.events_of("payment_method.attached")
    ] == [
        mastercard,
        visa.id,
    ]


def test_a_detached_card_leaves_the_list_and_the_default(
    client: stripe.StripeClient, customer: stripe.Customer, stripe_fake: StripeFake
) -> None:
    card = client.v1.payment_methods.attach("pm_card_visa", {"customer": customer.id})
    client.v1.customers.update(
        customer.id, {"invoice_settings": {"default_payment_method": card.id}}
    )

    detached = client.v1.payment_methods.detach(card.id)

    assert detached.customer is None
    assert client.v1.customers.payment_methods.list(customer.id).data == []
    updated = client.v1.customers.retrieve(customer.id)
    assert updated.invoice_settings is not None
    assert updated.invoice_settings.default_payment_method is None
    (event,) = stripe_fake.events_of("payment_method.detached")
    assert event["data"]["previous_attributes"] == {"customer": customer.id}


def test_a_card_of_another_customer_cannot_be_attached(
    client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    card = client.v1.payment_methods.attach("pm_card_visa", {"customer": customer.id})
    other = client.v1.customers.create({"email": "bob@example.com"})

    with pytest.raises(stripe.InvalidRequestError, match="already been attached"):
        client.v1.payment_methods.attach(card.id, {"customer": other.id})


def test_a_deleted_customer_reads_as_deleted_and_cannot_be_deleted_twice(
    client: stripe.StripeClient, customer: stripe.Customer, stripe_fake: StripeFake
) -> None:
    deleted = client.v1.customers.delete(customer.id)

    assert deleted.deleted is True
    assert client.v1.customers.retrieve(customer.id).to_dict()["deleted"] is True
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.customers.delete(customer.id)
    assert raised.value.http_status == 404
    assert len(stripe_fake.events_of("customer.deleted")) == 1


def test_a_payment_checkout_session_charges_its_line_items_when_completed(
    client: stripe.StripeClient, customer: stripe.Customer, stripe_fake: StripeFake
) -> None:
    session = client.v1.checkout.sessions.create(
        {
            "mode": "payment",
            "customer": customer.id,
            "line_items": [
                {
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": 1000,
                        "product_data": {"name": "M3O credit"},
                    },
                    "quantity": 2,
                }
            ],
            "metadata": {"customer_id": "c1"},
            "success_url": "https://m3o.example/paid",
            "cancel_url": "https://m3o.example/cancelled",
        }
    )

    assert (session.status, session.payment_status, session.amount_total) == (
        "open",
        "unpaid",
        2000,
    )
    assert session.url is not None and session.id in session.url
    (item,) = client.v1.checkout.sessions.line_items.list(session.id).data
    assert (item.description, item.quantity, item.amount_total) == ("M3O credit", 2, 2000)

    completed = stripe_fake.complete_checkout(session.id)

    assert (completed["status"], completed["payment_status"]) == ("complete", "paid")
    assert completed["metadata"] == {"customer_id": "c1"}
    intent = client.v1.payment_intents.retrieve(
        completed["payment_intent"], {"expand": ["latest_charge"]}
    )
    charge: Any = intent.latest_charge
    assert (charge.status, charge.amount, charge.currency, charge.customer) == (
        "succeeded",
        2000,
        "usd",
        customer.id,
    )
    assert [e["type"] for e in stripe_fake.events][-1] == "checkout.session.completed"


def test_a_setup_checkout_session_saves_the_card_to_the_customer(
    client: stripe.StripeClient, customer: stripe.Customer, stripe_fake: StripeFake
) -> None:
    session = client.v1.checkout.sessions.create(
        {"mode": "setup", "customer": customer.id, "currency": "usd", "success_url": "https://x/ok"}
    )

    completed = stripe_fake.complete_checkout(session.id, "pm_card_mastercard")

    setup = client.v1.setup_intents.retrieve(completed["setup_intent"])
    assert setup.status == "succeeded"
    (card,) = client.v1.customers.payment_methods.list(customer.id).data
    assert card.id == setup.payment_method
    assert card.card is not None and card.card.last4 == "4444"


def test_line_items_are_refused_in_setup_mode(
    client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    with pytest.raises(stripe.InvalidRequestError, match="setup"):
        client.v1.checkout.sessions.create(
            {"mode": "setup", "customer": customer.id, "line_items": [{"price": "price_1"}]}
        )


def test_a_confirmed_setup_intent_attaches_the_card(
    client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    setup = client.v1.setup_intents.create({"customer": customer.id, "usage": "off_session"})
    assert setup.client_secret is not None and setup.client_secret.startswith(setup.id)

    confirmed = client.v1.setup_intents.confirm(setup.id, {"payment_method": "pm_card_visa"})

    assert confirmed.status == "succeeded"
    (card,) = client.v1.customers.payment_methods.list(customer.id).data
    assert card.id == confirmed.payment_method


def test_a_confirmed_payment_makes_a_charge_with_a_receipt(
    client: stripe.StripeClient, customer: stripe.Customer, stripe_fake: StripeFake
) -> None:
    card = client.v1.payment_methods.attach("pm_card_visa", {"customer": customer.id})

    intent = client.v1.payment_intents.create(
        {
            "amount": 2500,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": card.id,
            "description": "M3O credit",
            "confirm": True,
            "off_session": True,
        },
        {"idempotency_key": "charge-card:1"},
    )

    assert intent.status == "succeeded" and intent.amount_received == 2500
    assert isinstance(intent.latest_charge, str)
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert charge.receipt_url is not None and charge.receipt_url.startswith("https://")
    assert (charge.customer, charge.amount, charge.currency) == (customer.id, 2500, "usd")
    assert (charge.description, charge.status, charge.paid) == ("M3O credit", "succeeded", True)
    assert [c.id for c in client.v1.charges.list({"customer": customer.id})] == [charge.id]
    (event,) = stripe_fake.events_of("charge.succeeded")
    assert event["data"]["object"]["id"] == charge.id
    assert event["request"]["idempotency_key"] == "charge-card:1"


def test_a_card_that_needs_3d_secure_waits_for_the_customer(
    client: stripe.StripeClient, customer: stripe.Customer, stripe_fake: StripeFake
) -> None:
    intent = client.v1.payment_intents.create(
        {
            "amount": 2500,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": "pm_card_authenticationRequired",
            "confirm": True,
        }
    )

    assert intent.status == "requires_action"
    assert intent.next_action is not None and intent.next_action.type == "use_stripe_sdk"
    assert intent.client_secret is not None
    assert client.v1.charges.list().data == []

    stripe_fake.authenticate(intent.id)

    assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"
    assert len(client.v1.charges.list({"customer": customer.id}).data) == 1


def test_failed_3d_secure_asks_for_another_card(
    client: stripe.StripeClient, stripe_fake: StripeFake
) -> None:
    card = stripe_fake.add_card(outcome="requires_action")
    intent = client.v1.payment_intents.create(
        {"amount": 2500, "currency": "usd", "payment_method": card, "confirm": True}
    )

    stripe_fake.fail_authentication(intent.id)

    failed = client.v1.payment_intents.retrieve(intent.id)
    assert failed.status == "requires_payment_method"
    assert failed.last_payment_error is not None
    assert failed.last_payment_error.code == "payment_intent_authentication_failure"


def test_a_card_that_needs_3d_secure_fails_off_session(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.CardError) as raised:
        client.v1.payment_intents.create(
            {
                "amount": 2500,
                "currency": "usd",
                "payment_method": "pm_card_authenticationRequired",
                "confirm": True,
                "off_session": True,
            }
        )

    assert (raised.value.http_status, raised.value.code) == (402, "authentication_required")


def test_a_declined_card_is_a_card_error_and_a_failed_charge(
    client: stripe.StripeClient, customer: stripe.Customer, stripe_fake: StripeFake
) -> None:
    card = stripe_fake.add_card(last4="9995", outcome="declines", decline_code="insufficient_funds")
    client.v1.payment_methods.attach(card, {"customer": customer.id})

    with pytest.raises(stripe.CardError) as raised:
        client.v1.payment_intents.create(
            {
                "amount": 2500,
                "currency": "usd",
                "customer": customer.id,
                "payment_method": card,
                "confirm": True,
            }
        )

    error = raised.value
    assert (error.http_status, error.code) == (402, "card_declined")
    assert error.error is not None and error.error.decline_code == "insufficient_funds"
    assert error.error.payment_intent is not None
    assert error.error.payment_intent.status == "requires_payment_method"
    (charge,) = client.v1.charges.list({"customer": customer.id}).data
    assert (charge.status, charge.failure_code) == ("failed", "card_declined")
    assert [e["data"]["object"]["id"] for e in stripe_fake.events_of("charge.failed")] == [
        charge.id
    ]


def test_an_amount_under_50_cents_is_refused(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.create({"amount": 49, "currency": "usd"})

    assert (raised.value.code, raised.value.param) == ("amount_too_small", "amount")


def test_expand_replaces_ids_by_their_objects(
    client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    intent = client.v1.payment_intents.create(
        {
            "amount": 2500,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": "pm_card_visa",
            "confirm": True,
            "expand": ["latest_charge", "customer", "no_such_field"],
        }
    )

    assert isinstance(intent.customer, stripe.Customer) and intent.customer.email == customer.email
    assert isinstance(intent.latest_charge, stripe.Charge)
    listed = client.v1.charges.list({"expand": ["data.customer"]}).data
    assert isinstance(listed[0].customer, stripe.Customer)


def test_lists_are_newest_first_and_paged(client: stripe.StripeClient) -> None:
    created = [client.v1.customers.create({"email": f"c{i}@example.com"}).id for i in range(5)]

    first = client.v1.customers.list({"limit": 2})
    rest = client.v1.customers.list({"limit": 10, "starting_after": first.data[-1].id})

    assert [c.id for c in first.data] == created[::-1][:2] and first.has_more
    assert [c.id for c in rest.data] == created[::-1][2:] and not rest.has_more
    assert [c.id for c in client.v1.customers.list({"limit": 2}).auto_paging_iter()] == created[
        ::-1
    ]
