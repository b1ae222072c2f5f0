"""Events balance consumes: payments to credit (``stripe``) and deleted customers
(``customers``).

Delivery is at least once. A payment is credited once because its charge id is the
adjustment's idempotency key; deleting a customer twice does nothing the second time. A
payment that cannot be credited (no exchange rate for its currency, a malformed event) is
logged as an error and fails: the bus retries it with backoff and then dead-letters it,
where operators see it and can replay it once the cause is fixed (a rate configured).
"""

from __future__ import annotations

from m3o.events import customers as customers_events
from m3o.events import stripe as stripe_events
from m3o.runtime.errors import BadRequest, Conflict
from m3o.runtime.events import Delivery
from m3o.runtime.logging import get_logger
from m3o.runtime.money import MAX_AMOUNT
from m3o.runtime.service import Consumer
from m3o.services.balance.balances import Balances
from m3o.services.balance.entries import Entry
from m3o.services.balance.settings import BalanceSettings

__all__ = [
    "CREDIT_ADDED",
    "MAX_ATTEMPTS",
    "SUBSCRIPTION_CREDIT_ADDED",
    "TOPUP",
    "ChargeNotCredited",
    "CustomerDeletions",
    "PaymentCredits",
]

_log = get_logger(__name__)

MAX_ATTEMPTS = 16
"""Deliveries of one event before it is dead-lettered: with the bus's backoff (1 s doubling,
at most 5 min) about 45 minutes, so a short database outage loses no payment."""

CREDIT_ADDED = "Credit added"
SUBSCRIPTION_CREDIT_ADDED = "Subscription credit added"
TOPUP = "topup"
"""``type`` of the BalanceIncrement events of payments."""
_ENDPOINT = "balance.chargesucceeded"
_PAYMENTS = "stripe"
"""``actioned_by`` of payment credits."""


class ChargeNotCredited(Exception):
    """A ChargeSucceeded event that cannot be credited; it ends among the dead letters."""


class PaymentCredits:
    """Consumes ``stripe`` in the group ``balance-stripe``: credits successful charges."""

    def __init__(self, *, balances: Balances, settings: BalanceSettings) -> None:
        self._balances = balances
        self._settings = settings

    def consumer(self) -> Consumer:
        return Consumer(stripe_events.TOPIC, self.handle, max_attempts=MAX_ATTEMPTS)

    async def handle(self, delivery: Delivery) -> None:
        event = delivery.decode(stripe_events.Event)
        if event.type != stripe_events.EventType.EventTypeChargeSucceeded:
            return
        charge = event.charge_succeeded
        if not charge.customer_id or not charge.charge_id or charge.amount <= 0:
            _log.error(
                "balance.charge_malformed",
                event_id=delivery.id,
                customer_id=charge.customer_id,
                charge_id=charge.charge_id,
                amount=charge.amount,
            )
            raise ChargeNotCredited(f"event {delivery.id}: charge without customer, id or amount")
        subscription = bool(charge.invoice_id)
        credit = self._settings.credit_for(
            charge.currency, charge.amount, subscription=subscription
        )
        if credit is None:
            _log.error(
                "balance.no_exchange_rate",
                event_id=delivery.id,
                customer_id=charge.customer_id,
                charge_id=charge.charge_id,
                currency=charge.currency,
                amount=charge.amount,
            )
            raise ChargeNotCredited(f"charge {charge.charge_id}: no rate for {charge.currency!r}")
        if credit <= 0:
            _log.info("balance.charge_all_margin", charge_id=charge.charge_id)
            return
        if credit > MAX_AMOUNT:
            _log.error(
                "balance.charge_too_large",
                event_id=delivery.id,
                customer_id=charge.customer_id,
                charge_id=charge.charge_id,
                credit=credit,
                maximum=MAX_AMOUNT,
            )
            raise ChargeNotCredited(f"charge {charge.charge_id}: credit above the maximum")
        meta = {"charge_id": charge.charge_id}
        if charge.receipt_url:
            meta["receipt_url"] = charge.receipt_url
        entry = Entry(
            customer_id=charge.customer_id,
            delta=credit,
            reference=SUBSCRIPTION_CREDIT_ADDED if subscription else CREDIT_ADDED,
            kind=TOPUP,
            visible=True,
            idempotency_key=charge.charge_id,
            meta=meta,
        )
        try:
            await self._balances.apply(_ENDPOINT, [entry], actioned_by=_PAYMENTS)
        except Conflict:
            _log.error(
                "balance.charge_id_reused",
                event_id=delivery.id,
                customer_id=charge.customer_id,
                charge_id=charge.charge_id,
            )
            raise
        except BadRequest as exc:
            # The balance would pass its maximum: nothing is credited, the operators see it.
            _log.error(
                "balance.charge_refused",
                event_id=delivery.id,
                customer_id=charge.customer_id,
                charge_id=charge.charge_id,
                detail=exc.detail,
            )
            raise


class CustomerDeletions:
    """Consumes ``customers`` in the group ``balance-customers``: a deleted customer's
    balance and ledger go."""

    def __init__(self, *, balances: Balances) -> None:
        self._balances = balances

    def consumer(self) -> Consumer:
        return Consumer(customers_events.TOPIC, self.handle, max_attempts=MAX_ATTEMPTS)

    async def handle(self, delivery: Delivery) -> None:
        event = delivery.decode(customers_events.Event)
        if event.type != customers_events.EventType.EventTypeDeleted or not event.customer.id:
            return
        await self._balances.remove(event.customer.id)
        _log.info("balance.customer_removed", customer_id=event.customer.id)
