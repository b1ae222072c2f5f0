"""The events the stripe service publishes, built from Stripe's objects (as JSON)."""

from __future__ import annotations

from typing import Any

from m3o.events.customers import events_pb2 as customers_events
from m3o.events.stripe import events_pb2 as stripe_events

__all__ = [
    "charge_failed",
    "charge_succeeded",
    "payment_method_added",
    "payment_method_deleted",
    "subscription_deleted",
]

_Type = stripe_events.EventType
_CustomerType = customers_events.EventType


def charge_succeeded(
    customer_id: str, charge: dict[str, Any], invoice_id: str
) -> stripe_events.Event:
    return stripe_events.Event(
        type=_Type.EventTypeChargeSucceeded,
        charge_succeeded=stripe_events.ChargeSucceeded(
            customer_id=customer_id,
            currency=str(charge.get("currency") or ""),
            amount=int(charge.get("amount") or 0),
            charge_id=str(charge["id"]),
            receipt_url=str(charge.get("receipt_url") or ""),
            invoice_id=invoice_id,
        ),
    )


def charge_failed(customer_id: str, charge: dict[str, Any]) -> stripe_events.Event:
    return stripe_events.Event(
        type=_Type.EventTypeChargeFailed,
        charge_failed=stripe_events.ChargeFailed(
            customer_id=customer_id,
            currency=str(charge.get("currency") or ""),
            amount=int(charge.get("amount") or 0),
            charge_id=str(charge["id"]),
            error=str(charge.get("failure_message") or charge.get("failure_code") or ""),
        ),
    )


def subscription_deleted(customer_id: str, subscription: dict[str, Any]) -> stripe_events.Event:
    items = (subscription.get("items") or {}).get("data") or []
    price = (items[0].get("price") or {}) if items else {}
    return stripe_events.Event(
        type=_Type.EventTypeSubscriptionDeleted,
        subscription_deleted=stripe_events.SubscriptionDeleted(
            customer_id=customer_id,
            subscription_id=str(subscription["id"]),
            price_id=str(price.get("id") or "") if isinstance(price, dict) else str(price),
        ),
    )


def payment_method_added(customer_id: str, payment_method_id: str) -> customers_events.Event:
    return customers_events.Event(
        type=_CustomerType.EventTypeAddPaymentMethod,
        customer=customers_events.Customer(id=customer_id),
        add_payment_method=customers_events.AddPaymentMethod(id=payment_method_id),
    )


def payment_method_deleted(customer_id: str, payment_method_id: str) -> customers_events.Event:
    return customers_events.Event(
        type=_CustomerType.EventTypeDeletePaymentMethod,
        customer=customers_events.Customer(id=customer_id),
        delete_payment_method=customers_events.DeletePaymentMethod(id=payment_method_id),
    )
