"""stripe/ChargeSucceeded: each payment credited once, margin on subscriptions only,
other currencies at the configured rate or not at all."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import structlog

from m3o.events.customers import EventType
from m3o.events.stripe import TOPIC, Event
from m3o.events.stripe import EventType as StripeEventType
from m3o.events.stripe import events_pb2 as stripe_pb
from m3o.runtime.errors import Conflict
from m3o.runtime.events import Delivery
from m3o.services.balance.consumers import MAX_ATTEMPTS, ChargeNotCredited, PaymentCredits
from m3o.services.balance.proto import balance_pb2 as pb
from m3o.services.balance.settings import BalanceSettings
from services.balance.support import ANN, BOB, World, call, customer


def _charge(
    amount: int = 1000,
    *,
    charge_id: str = "ch_1",
    currency: str = "usd",
    invoice_id: str = "",
    customer_id: str = ANN,
) -> Delivery:
    event = Event(
        type=StripeEventType.EventTypeChargeSucceeded,
        charge_succeeded=stripe_pb.ChargeSucceeded(
            customer_id=customer_id,
            currency=currency,
            amount=amount,
            charge_id=charge_id,
            receipt_url=f"https://pay.example/{charge_id}",
            invoice_id=invoice_id,
        ),
    )
    return Delivery(
        id=f"evt-{charge_id}",
        topic=TOPIC,
        type_name="EventTypeChargeSucceeded",
        time=datetime(2024, 1, 1, tzinfo=UTC),
        payload=event.SerializeToString(),
    )


def _credits(
    world: World, *, margin: int = 0, exchange_rates: dict[str, int] | None = None
) -> PaymentCredits:
    settings = BalanceSettings(margin=margin, exchange_rates=exchange_rates or {})
    return PaymentCredits(balances=world.balances, settings=settings)


async def test_a_top_up_credits_amount_times_ten_thousand_visibly_with_its_receipt(
    world: World,
) -> None:
    consumer = _credits(world, margin=20)

    await consumer.handle(_charge(1000))

    assert await world.current(ANN) == 10_000_000
    response = await world.handler.list_adjustments(
        pb.ListAdjustmentsRequest(), call("ListAdjustments", customer(ANN))
    )
    [adjustment] = response.adjustments
    assert (adjustment.delta, adjustment.reference) == (10_000_000, "Credit added")
    assert adjustment.meta["receipt_url"] == "https://pay.example/ch_1"
    [event] = world.events()
    assert event.type == EventType.EventTypeBalanceIncrement
    assert event.balance_increment.type == "topup"
    assert event.balance_increment.amount == 10_000_000
    assert world.customers.read.call_count == 0  # money is never refused


async def test_a_redelivered_payment_is_credited_once(world: World) -> None:
    consumer = _credits(world)

    for _ in range(3):
        await consumer.handle(_charge(1000))

    assert (await world.ledger(ANN)).deltas == [10_000_000]
    assert len(world.events()) == 1


async def test_the_margin_is_kept_from_subscription_payments_only(world: World) -> None:
    consumer = _credits(world, margin=20)

    await consumer.handle(_charge(999, charge_id="ch_sub", invoice_id="in_1"))

    response = await world.handler.list_adjustments(
        pb.ListAdjustmentsRequest(customer_id=ANN), call("ListAdjustments")
    )
    [adjustment] = response.adjustments
    assert adjustment.delta == 9_990_000 - 1_998_000
    assert adjustment.reference == "Subscription credit added"


async def test_another_currency_is_credited_at_its_configured_rate(world: World) -> None:
    consumer = _credits(world, exchange_rates={"eur": 10_800})

    await consumer.handle(_charge(500, currency="EUR"))

    assert await world.current(ANN) == 500 * 10_800


async def test_a_currency_without_rate_is_logged_not_credited_and_left_to_dead_letter(
    world: World,
) -> None:
    consumer = _credits(world, exchange_rates={"eur": 10_800})

    with structlog.testing.capture_logs() as logs, pytest.raises(ChargeNotCredited):
        await consumer.handle(_charge(500, currency="gbp"))

    assert (await world.ledger(ANN)).deltas == []
    [logged] = [entry for entry in logs if entry["event"] == "balance.no_exchange_rate"]
    assert logged["log_level"] == "error"
    assert (logged["currency"], logged["charge_id"]) == ("gbp", "ch_1")
    assert consumer.consumer().max_attempts == MAX_ATTEMPTS


@pytest.mark.parametrize(
    "delivery",
    [_charge(0), _charge(-5), _charge(charge_id=""), _charge(customer_id="")],
    ids=["zero", "negative", "no-charge-id", "no-customer"],
)
async def test_a_malformed_charge_fails_and_credits_nothing(
    world: World, delivery: Delivery
) -> None:
    with pytest.raises(ChargeNotCredited):
        await _credits(world).handle(delivery)

    assert world.events() == []


async def test_a_charge_id_reused_for_another_customer_fails_the_event(world: World) -> None:
    consumer = _credits(world)
    await consumer.handle(_charge(1000))

    with pytest.raises(Conflict):
        await consumer.handle(_charge(1000, customer_id=BOB))

    assert (await world.ledger(BOB)).deltas == []


async def test_failed_charges_and_other_events_are_ignored(world: World) -> None:
    failed = Event(
        type=StripeEventType.EventTypeChargeFailed,
        charge_failed=stripe_pb.ChargeFailed(customer_id=ANN, amount=1000, charge_id="ch_x"),
    )
    delivery = Delivery(
        id="evt-failed",
        topic=TOPIC,
        type_name="EventTypeChargeFailed",
        time=datetime(2024, 1, 1, tzinfo=UTC),
        payload=failed.SerializeToString(),
    )

    await _credits(world).handle(delivery)

    assert (await world.ledger(ANN)).deltas == []


async def test_a_hundred_percent_margin_credits_nothing(world: World) -> None:
    await _credits(world, margin=100).handle(_charge(1000, invoice_id="in_1"))

    assert (await world.ledger(ANN)).deltas == []
