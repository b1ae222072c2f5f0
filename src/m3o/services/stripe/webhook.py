"""``POST /stripe/webhook``: the events Stripe sends, verified, handled once each.

1. The ``Stripe-Signature`` header is checked with the library against the live signing
   secret, then the test one, within the configured tolerance; a bad or missing one is
   BadRequest (400) and nothing happens.
2. An event already handled (its id in ``stripe_processed_events``) is acknowledged.
3. What the event needs from Stripe or the mapping is read (no transaction held open over
   Stripe); a failure here is an error, so Stripe delivers the event again later.
4. One transaction records the event id and publishes what it caused, so an event
   delivered again, or twice at once, publishes nothing more.

Handled: ``customer.created`` (maps a Stripe customer made for one of ours, if unmapped),
``charge.succeeded`` (stripe ChargeSucceeded, with the invoice when it pays one; a Stripe
customer of no customer is an alert and an error, so the money waits for its mapping
rather than being dropped), ``charge.failed`` (ChargeFailed and an alert),
``payment_method.attached`` / ``.detached`` (customers AddPaymentMethod /
DeletePaymentMethod), ``customer.subscription.deleted`` (stripe SubscriptionDeleted, for
billing to move the account to the free tier). ``invoice.paid`` publishes nothing: the
invoice's charge is credited by its own ``charge.succeeded``, which names the invoice.
Every other event is acknowledged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf.message import Message

from m3o.events import customers as customers_events
from m3o.events import stripe as stripe_events
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.errors import BadRequest, Unavailable
from m3o.runtime.events import Publisher
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.stripe import events, records
from m3o.services.stripe.connection import StripeConnection
from m3o.services.stripe.customer_map import CUSTOMER_METADATA, CustomerMap
from m3o.services.stripe.payment_alerts import ALERT, PAYMENTS, PaymentAlerts
from m3o.services.stripe.settings import StripeSettings

__all__ = ["ALERT", "PAYMENTS", "Webhooks"]

_log = get_logger(__name__)

Json = dict[str, Any]


@dataclass(slots=True)
class _Outcome:
    """What one Stripe event causes: events to publish, a mapping to record."""

    publish: list[tuple[str, Message]] = field(default_factory=list)
    mapping: tuple[str, str] | None = None


def _amount(charge: Json) -> int | None:
    amount = charge.get("amount")
    return amount if isinstance(amount, int) else None


def _customer_field(obj: Json, name: str = "customer") -> str:
    value = obj.get(name)
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


class Webhooks:
    def __init__(
        self,
        *,
        settings: StripeSettings,
        sessions: SessionFactory,
        publisher: Publisher,
        stripe: StripeConnection,
        customers: CustomerMap,
        alerts: PaymentAlerts,
        clock: Clock = utc_now,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._publisher = publisher
        self._stripe = stripe
        self._customers = customers
        self._alerts = alerts
        self._clock = clock
        self._handlers: dict[str, Callable[[str, Json], Awaitable[_Outcome]]] = {
            "customer.created": self._customer_created,
            "charge.succeeded": self._charge_succeeded,
            "charge.failed": self._charge_failed,
            "payment_method.attached": self._payment_method_attached,
            "payment_method.detached": self._payment_method_detached,
            "customer.subscription.deleted": self._subscription_deleted,
        }

    async def receive(self, endpoint: str, payload: bytes, signature: str) -> None:
        if not signature:
            raise BadRequest(endpoint, "Missing Stripe-Signature header")
        await self._verify(endpoint, payload, signature)
        event = orjson.loads(payload)
        event_id, event_type = str(event["id"]), str(event["type"])
        handler = self._handlers.get(event_type)
        if handler is None:
            _log.info("stripe.webhook_ignored", event_id=event_id, type=event_type)
            return
        async with self._sessions() as session:
            if await records.is_processed(session, event_id):
                _log.info("stripe.webhook_repeated", event_id=event_id, type=event_type)
                return
        data = event["data"]
        obj: Json = dict(data["object"])
        # A detached card no longer names its customer; the event's previous state does.
        obj["_previous"] = data.get("previous_attributes") or {}
        outcome = await handler(endpoint, obj)
        await self._record(event_id, event_type, outcome)

    async def _verify(self, endpoint: str, payload: bytes, signature: str) -> None:
        stripe = await self._stripe.module()
        tolerance = int(self._settings.webhook_tolerance.total_seconds())
        for secret in self._settings.signing_secrets:
            try:
                stripe.Webhook.construct_event(payload, signature, secret, tolerance)
            except (stripe.SignatureVerificationError, ValueError):
                continue
            return
        if not self._settings.signing_secrets:
            _log.error("stripe.webhook_no_secret")
        _log.warning("stripe.webhook_bad_signature")
        raise BadRequest(endpoint, "Invalid Stripe-Signature")

    async def _record(self, event_id: str, event_type: str, outcome: _Outcome) -> None:
        async with transaction(self._sessions) as session:
            if not await records.mark_processed(session, event_id, event_type, self._clock()):
                _log.info("stripe.webhook_repeated", event_id=event_id, type=event_type)
                return
            if outcome.mapping is not None:
                await records.map_customer(session, *outcome.mapping, self._clock())
            for topic, message in outcome.publish:
                await self._publisher.publish(topic, message, session=session)
        _log.info("stripe.webhook_handled", event_id=event_id, type=event_type)

    async def _customer_created(self, endpoint: str, customer: Json) -> _Outcome:
        metadata = customer.get("metadata") or {}
        customer_id = str(metadata.get(CUSTOMER_METADATA) or "")
        if not customer_id:
            return _Outcome()
        return _Outcome(mapping=(customer_id, str(customer["id"])))

    async def _charge_succeeded(self, endpoint: str, charge: Json) -> _Outcome:
        stripe_customer = _customer_field(charge)
        customer_id = await self._customers.owner(stripe_customer) if stripe_customer else None
        if customer_id is None:
            await self._alerts.report(
                "charge_unmapped",
                charge_id=str(charge["id"]),
                customer_id="",
                amount=_amount(charge),
                details={
                    "stripe_customer_id": stripe_customer,
                    "currency": charge.get("currency"),
                },
            )
            raise Unavailable(endpoint, "Charge of an unknown customer, not credited yet")
        invoice_id = await self._invoice_of(endpoint, _customer_field(charge, "payment_intent"))
        event = events.charge_succeeded(customer_id, charge, invoice_id)
        return _Outcome(publish=[(stripe_events.TOPIC, event)])

    async def _invoice_of(self, endpoint: str, payment_intent: str) -> str:
        """The invoice a payment pays, "" for a payment of no invoice."""
        if not payment_intent:
            return ""
        payments = await self._stripe.call(
            endpoint,
            lambda client: client.v1.invoice_payments.list_async(
                {"payment": {"type": "payment_intent", "payment_intent": payment_intent}}
            ),
        )
        for payment in payments.data:
            invoice = payment.invoice
            return invoice if isinstance(invoice, str) else str(invoice.id)
        return ""

    async def _charge_failed(self, endpoint: str, charge: Json) -> _Outcome:
        stripe_customer = _customer_field(charge)
        customer_id = await self._customers.owner(stripe_customer) if stripe_customer else None
        await self._alerts.report(
            "charge_failed",
            charge_id=str(charge["id"]),
            customer_id=customer_id or "",
            amount=_amount(charge),
            details={
                "stripe_customer_id": stripe_customer,
                "currency": charge.get("currency"),
                "error": charge.get("failure_message") or charge.get("failure_code"),
            },
        )
        event = events.charge_failed(customer_id or "", charge)
        return _Outcome(publish=[(stripe_events.TOPIC, event)])

    async def _owned(self, kind: str, obj: Json, stripe_customer: str) -> str | None:
        customer_id = await self._customers.owner(stripe_customer) if stripe_customer else None
        if customer_id is None:
            # The customer is gone (deleted here first) or never was ours: nothing to tell.
            _log.info("stripe.webhook_no_customer", kind=kind, object_id=obj.get("id"))
        return customer_id

    async def _payment_method_attached(self, endpoint: str, method: Json) -> _Outcome:
        customer_id = await self._owned("attached", method, _customer_field(method))
        if customer_id is None:
            return _Outcome()
        event = events.payment_method_added(customer_id, str(method["id"]))
        return _Outcome(publish=[(customers_events.TOPIC, event)])

    async def _payment_method_detached(self, endpoint: str, method: Json) -> _Outcome:
        stripe_customer = _customer_field(method) or _customer_field(method["_previous"])
        customer_id = await self._owned("detached", method, stripe_customer)
        if customer_id is None:
            return _Outcome()
        event = events.payment_method_deleted(customer_id, str(method["id"]))
        return _Outcome(publish=[(customers_events.TOPIC, event)])

    async def _subscription_deleted(self, endpoint: str, subscription: Json) -> _Outcome:
        customer_id = await self._owned("subscription", subscription, _customer_field(subscription))
        if customer_id is None:
            return _Outcome()
        event = events.subscription_deleted(customer_id, subscription)
        return _Outcome(publish=[(stripe_events.TOPIC, event)])
