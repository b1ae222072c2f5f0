"""Subscriptions and their invoices, through the library, in this API version's shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import stripe

from support.stripe_fake import StripeFake


@pytest.fixture
def price(stripe_fake: StripeFake) -> str:
    return str(
        stripe_fake.add_price(unit_amount=4900, price_id="price_pro", product_name="Pro")["id"]
    )


@pytest.fixture
def card(client: stripe.StripeClient, customer: stripe.Customer) -> str:
    return client.v1.payment_methods.attach("pm_card_visa", {"customer": customer.id}).id


def subscribe(
    client: stripe.StripeClient, customer: str, price: str, card: str, **extra: Any
) -> Any:
    params: Any = {
        "customer": customer,
        "items": [{"price": price}],
        "default_payment_method": card,
        "expand": ["latest_invoice.payments"],
        **extra,
    }
    return client.v1.subscriptions.create(params, {"idempotency_key": f"subscribe:{customer}"})


def test_a_subscription_starts_active_with_a_paid_invoice(
    client: stripe.StripeClient,
    customer: stripe.Customer,
    price: str,
    card: str,
    stripe_fake: StripeFake,
) -> None:
    sub = subscribe(client, customer.id, price, card)

    assert (sub.status, sub.customer, sub.default_payment_method) == ("active", customer.id, card)
    (item,) = sub["items"].data
    assert item.price.id == price and item.quantity == 1
    start = datetime.fromtimestamp(item.current_period_start, UTC)
    end = datetime.fromtimestamp(item.current_period_end, UTC)
    assert (end.year * 12 + end.month) - (start.year * 12 + start.month) == 1
    invoice = sub.latest_invoice
    assert (invoice.status, invoice.amount_paid, invoice.customer) == ("paid", 4900, customer.id)
    assert invoice.parent.subscription_details.subscription == sub.id
    (payment,) = invoice.payments.data
    intent = client.v1.payment_intents.retrieve(payment.payment.payment_intent)
    assert isinstance(intent.latest_charge, str)
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.amount, charge.customer, charge.status) == (4900, customer.id, "succeeded")
    (paid,) = stripe_fake.events_of("invoice.paid")
    assert paid["data"]["object"]["id"] == invoice.id
    assert len(stripe_fake.events_of("customer.subscription.created")) == 1


def test_a_charge_leads_back_to_its_invoice_through_the_invoice_payments(
    client: stripe.StripeClient, customer: stripe.Customer, price: str, card: str
) -> None:
    sub = subscribe(client, customer.id, price, card)
    (charge,) = client.v1.charges.list({"customer": customer.id}).data
    assert isinstance(charge.payment_intent, str)

    (payment,) = client.v1.invoice_payments.list(
        {"payment": {"type": "payment_intent", "payment_intent": charge.payment_intent}}
    ).data

    assert payment.invoice == sub.latest_invoice.id


def test_a_cancelled_subscription_is_kept_and_cannot_be_cancelled_again(
    client: stripe.StripeClient,
    customer: stripe.Customer,
    price: str,
    card: str,
    stripe_fake: StripeFake,
) -> None:
    sub = subscribe(client, customer.id, price, card)

    cancelled = client.v1.subscriptions.cancel(sub.id)

    assert cancelled.status == "canceled" and cancelled.canceled_at is not None
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    assert client.v1.subscriptions.list({"customer": customer.id}).data == []
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.subscriptions.cancel(sub.id)
    assert (raised.value.http_status, raised.value.code) == (404, "resource_missing")
    (deleted,) = stripe_fake.events_of("customer.subscription.deleted")
    assert deleted["data"]["object"]["status"] == "canceled"


def test_each_renewal_is_a_new_paid_invoice(
    client: stripe.StripeClient,
    customer: stripe.Customer,
    price: str,
    card: str,
    stripe_fake: StripeFake,
) -> None:
    sub = subscribe(client, customer.id, price, card)

    renewal = stripe_fake.renew_subscription(sub.id)

    assert (renewal["status"], renewal["billing_reason"], renewal["amount_paid"]) == (
        "paid",
        "subscription_cycle",
        4900,
    )
    invoices = client.v1.invoices.list({"subscription": sub.id}).data
    assert [i.id for i in invoices] == [renewal["id"], sub.latest_invoice.id]
    item = client.v1.subscriptions.retrieve(sub.id)["items"].data[0]
    assert item.current_period_start == sub["items"].data[0].current_period_end
    assert len(stripe_fake.events_of("invoice.paid")) == 2


def test_a_renewal_declined_makes_the_subscription_past_due(
    client: stripe.StripeClient, customer: stripe.Customer, price: str, stripe_fake: StripeFake
) -> None:
    card = stripe_fake.add_card()
    client.v1.payment_methods.attach(card, {"customer": customer.id})
    sub = subscribe(client, customer.id, price, card)
    declining = stripe_fake.add_card(outcome="declines")
    client.v1.payment_methods.attach(declining, {"customer": customer.id})
    client.v1.subscriptions.update(sub.id, {"default_payment_method": declining})

    renewal = stripe_fake.renew_subscription(sub.id)

    assert renewal["status"] == "open"
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    assert len(stripe_fake.events_of("invoice.payment_failed")) == 1


def test_a_declined_first_payment_leaves_the_subscription_incomplete(
    client: stripe.StripeClient, customer: stripe.Customer, price: str
) -> None:
    card = client.v1.payment_methods.attach("pm_card_chargeDeclined", {"customer": customer.id})

    sub = subscribe(client, customer.id, price, card.id)

    assert sub.status == "incomplete"
    assert sub.latest_invoice.status == "open"


def test_error_if_incomplete_answers_the_decline_and_keeps_no_subscription(
    client: stripe.StripeClient, customer: stripe.Customer, price: str
) -> None:
    card = client.v1.payment_methods.attach("pm_card_chargeDeclined", {"customer": customer.id})

    with pytest.raises(stripe.CardError) as raised:
        subscribe(client, customer.id, price, card.id, payment_behavior="error_if_incomplete")

    assert raised.value.code == "card_declined"
    assert client.v1.subscriptions.list({"customer": customer.id, "status": "all"}).data == []


def test_a_first_payment_passing_3d_secure_activates_the_subscription(
    client: stripe.StripeClient, customer: stripe.Customer, price: str, stripe_fake: StripeFake
) -> None:
    card = client.v1.payment_methods.attach(
        "pm_card_authenticationRequired", {"customer": customer.id}
    )
    sub = subscribe(client, customer.id, price, card.id)
    assert sub.status == "incomplete"
    intent_id = sub.latest_invoice.payments.data[0].payment.payment_intent

    stripe_fake.authenticate(intent_id)

    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    (updated,) = stripe_fake.events_of("customer.subscription.updated")
    assert updated["data"]["previous_attributes"] == {"status": "incomplete"}


def test_a_subscription_needs_a_card(
    client: stripe.StripeClient, customer: stripe.Customer, price: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError, match="no attached payment source"):
        client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price}]})


def test_the_customers_default_card_pays_when_the_subscription_has_none(
    client: stripe.StripeClient, customer: stripe.Customer, price: str, card: str
) -> None:
    client.v1.customers.update(customer.id, {"invoice_settings": {"default_payment_method": card}})

    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price}]})

    assert sub.status == "active"


def test_a_one_time_price_cannot_be_subscribed(
    client: stripe.StripeClient, customer: stripe.Customer, card: str, stripe_fake: StripeFake
) -> None:
    once = stripe_fake.add_price(unit_amount=1000, interval=None)

    with pytest.raises(stripe.InvalidRequestError, match="type=recurring") as raised:
        subscribe(client, customer.id, once["id"], card)

    assert raised.value.param == "items[0][price]"


def test_deleting_the_customer_cancels_its_subscriptions(
    client: stripe.StripeClient, customer: stripe.Customer, price: str, card: str
) -> None:
    sub = subscribe(client, customer.id, price, card)

    client.v1.customers.delete(customer.id)

    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
