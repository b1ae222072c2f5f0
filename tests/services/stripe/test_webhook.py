"""The webhook: signatures checked, each Stripe event handled once, money never dropped."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from structlog.testing import capture_logs

from m3o.events import customers as customers_events
from m3o.events import stripe as stripe_events
from m3o.runtime.errors import BadRequest, Unavailable
from m3o.services.stripe.proto import stripe_pb2 as pb
from m3o.services.stripe.webhook import ALERT, PAYMENTS
from services.stripe.support import (
    ANN,
    BILLING,
    BOB,
    GATEWAY,
    TEST_SECRET,
    World,
    call,
    customer,
)
from support.stripe_fake import event_payload, sign_webhook


async def _charge(world: World, customer_id: str = ANN, **card: Any) -> None:
    card_id = await world.card_of(customer_id, **card)
    await world.handler.charge_card(
        pb.ChargeCardRequest(id=card_id, amount=1500), call("ChargeCard", customer(customer_id))
    )


def _succeeded(world: World) -> dict[str, object]:
    return world.fake.events_of("charge.succeeded")[-1]


async def test_charge_succeeded_publishes_the_charge_in_the_same_transaction(world: World) -> None:
    await _charge(world)
    event = _succeeded(world)

    await world.deliver(event)

    charge = event["data"]["object"]  # type: ignore[index]
    assert [
        (c.customer_id, c.amount, c.currency, c.charge_id, c.invoice_id) for c in world.charges()
    ] == [(ANN, 1500, "usd", charge["id"], "")]
    assert world.charges()[0].receipt_url == charge["receipt_url"]
    assert [p.in_transaction for p in world.publisher.published] == [True]


async def test_the_test_signing_secret_is_accepted(world: World) -> None:
    await _charge(world)

    await world.deliver(_succeeded(world), secret=TEST_SECRET)

    assert len(world.charges()) == 1


async def test_an_event_delivered_many_times_is_published_once(world: World) -> None:
    await _charge(world)
    event = _succeeded(world)

    for _ in range(3):
        await world.deliver(event)
    await asyncio.gather(*(world.deliver(event) for _ in range(5)))

    assert len(world.charges()) == 1


@pytest.mark.parametrize("case", ["tampered", "wrong secret", "stale", "missing", "garbage"])
async def test_a_bad_signature_is_bad_request_and_changes_nothing(world: World, case: str) -> None:
    await _charge(world)
    payload = event_payload(_succeeded(world))
    signature = sign_webhook(payload, "whsec_live")
    if case == "tampered":
        payload = payload.replace(b'"amount":1500', b'"amount":9500')
    elif case == "wrong secret":
        signature = sign_webhook(payload, "whsec_other")
    elif case == "stale":
        signature = sign_webhook(payload, "whsec_live", timestamp=int(time.time()) - 301)
    elif case == "missing":
        signature = ""
    else:
        signature = "nonsense"

    with pytest.raises(BadRequest):
        await world.handler.webhook(
            pb.WebhookRequest(payload=payload, signature=signature), call("Webhook", GATEWAY)
        )

    assert world.publisher.published == []
    # the genuine delivery still goes through afterwards
    await world.deliver(_succeeded(world))
    assert len(world.charges()) == 1


async def test_a_charge_of_an_unmapped_customer_is_an_alert_and_credited_once_mapped(
    world: World,
) -> None:
    client = world.fake.client()
    stranger = client.v1.customers.create({"metadata": {"customer_id": BOB}})
    card = world.fake.add_card()
    client.v1.payment_methods.attach(card, {"customer": stranger.id})
    client.v1.payment_intents.create(
        {
            "amount": 2000,
            "currency": "usd",
            "customer": stranger.id,
            "payment_method": card,
            "confirm": True,
        }
    )
    event = _succeeded(world)

    with capture_logs() as logs, pytest.raises(Unavailable):
        await world.deliver(event)

    assert world.charges() == []
    assert any(
        log["event"] == ALERT and log["category"] == PAYMENTS and log["action"] == "charge_unmapped"
        for log in logs
    )
    [reported] = world.alerts.report_event.calls
    assert (reported.event.category, reported.event.action) == (PAYMENTS, "charge_unmapped")
    assert reported.event.value == 2000 and reported.event.label.startswith("ch_")
    assert reported.event.metadata["stripe_customer_id"] == stranger.id
    # Stripe's customer.created maps it; Stripe delivers the charge again: credited once.
    await world.deliver(world.fake.events_of("customer.created")[-1])
    await world.deliver(event)
    await world.deliver(event)
    assert [(c.customer_id, c.amount) for c in world.charges()] == [(BOB, 2000)]


async def test_customer_created_does_not_remap_a_mapped_customer(world: World) -> None:
    mapped = await world.customers.ensure("test", ANN)
    other = world.fake.client().v1.customers.create({"metadata": {"customer_id": ANN}})

    await world.deliver(world.fake.events_of("customer.created")[-1])

    assert other.id != mapped
    assert await world.customers.find(ANN) == mapped


async def test_charge_failed_publishes_the_failure_and_alerts(world: World) -> None:
    with pytest.raises(BadRequest):
        await _charge(world, outcome="declines")
    event = world.fake.events_of("charge.failed")[-1]

    with capture_logs() as logs:
        await world.deliver(event)

    [failed] = [e.charge_failed for e in world.stripe_events()]
    assert failed.customer_id == ANN
    assert failed.amount == 1500
    assert failed.error
    assert any(log["event"] == ALERT and log["action"] == "charge_failed" for log in logs)
    [reported] = world.alerts.report_event.calls
    assert (reported.event.category, reported.event.action) == (PAYMENTS, "charge_failed")
    assert (reported.event.userID, reported.event.value) == (ANN, 1500)
    assert reported.event.metadata["error"] == failed.error


async def test_a_failed_alert_report_does_not_stop_the_failed_charge(world: World) -> None:
    world.alerts.report_event.raises(Unavailable("alerts.reportevent", "down"))
    with pytest.raises(BadRequest):
        await _charge(world, outcome="declines")

    with capture_logs() as logs:
        await world.deliver(world.fake.events_of("charge.failed")[-1])

    assert [e.charge_failed.customer_id for e in world.stripe_events()] == [ANN]
    assert any(log["event"] == "stripe.alert_failed" for log in logs)


async def test_cards_attached_and_detached_are_told_to_customers(world: World) -> None:
    card = await world.card_of(ANN)
    await world.handler.delete_card(
        pb.DeleteCardRequest(id=card), call("DeleteCard", customer(ANN))
    )

    await world.deliver(world.fake.events_of("payment_method.attached")[-1])
    await world.deliver(world.fake.events_of("payment_method.detached")[-1])

    events = world.customer_events()
    assert [(e.type, e.customer.id) for e in events] == [
        (customers_events.EventType.EventTypeAddPaymentMethod, ANN),
        (customers_events.EventType.EventTypeDeletePaymentMethod, ANN),
    ]
    assert events[0].add_payment_method.id == card
    assert events[1].delete_payment_method.id == card


async def test_a_card_event_of_a_deleted_customer_is_acknowledged(world: World) -> None:
    await world.card_of(ANN)
    await world.handler.delete_customer(
        pb.DeleteCustomerRequest(customer_id=ANN), call("DeleteCustomer", BILLING)
    )

    await world.deliver(world.fake.events_of("payment_method.attached")[-1])

    assert world.publisher.published == []


async def _subscribed(world: World) -> str:
    card = await world.card_of(ANN)
    price = world.fake.add_price(unit_amount=2000)
    made = await world.handler.subscribe(
        pb.SubscribeRequest(
            price_id=price["id"], card_id=card, customer_id=ANN, idempotency_key="s"
        ),
        call("Subscribe", BILLING),
    )
    return made.subscription_id


async def test_a_subscription_charge_names_its_invoice_and_is_credited_once(world: World) -> None:
    subscription = await _subscribed(world)
    invoice = world.fake.events_of("invoice.paid")[-1]

    for event in world.fake.events:
        if event["type"] in ("charge.succeeded", "invoice.paid"):
            await world.deliver(event)

    [charge] = world.charges()
    assert charge.invoice_id == invoice["data"]["object"]["id"]
    assert charge.amount == 2000
    assert subscription


async def test_a_deleted_subscription_is_published_for_billing(world: World) -> None:
    subscription = await _subscribed(world)
    await world.handler.unsubscribe(
        pb.UnsubscribeRequest(subscription_id=subscription, customer_id=ANN),
        call("Unsubscribe", BILLING),
    )

    await world.deliver(world.fake.events_of("customer.subscription.deleted")[-1])

    [event] = world.stripe_events()
    assert event.type == stripe_events.EventType.EventTypeSubscriptionDeleted
    assert event.subscription_deleted.customer_id == ANN
    assert event.subscription_deleted.subscription_id == subscription
    assert event.subscription_deleted.price_id


async def test_a_failure_to_publish_answers_an_error_and_the_retry_publishes(world: World) -> None:
    await _charge(world)
    event = _succeeded(world)
    world.publisher.raises(RuntimeError("event log down"))

    with pytest.raises(RuntimeError):
        await world.deliver(event)

    world.publisher.raises(None)  # type: ignore[arg-type]
    world.publisher.published.clear()
    await world.deliver(event)
    assert len(world.charges()) == 1
