"""The fake Stripe's billing: prices and products, subscriptions, invoices.

Objects have the shape of the API version the installed ``stripe`` library speaks (see
``API_VERSION``): an invoice names its subscription in
``parent.subscription_details.subscription`` and its payments in ``payments`` (shown only
when expanded: ``expand=["payments"]``), each an ``invoice_payment`` whose
``payment.payment_intent`` leads to the charge (``latest_charge``); a subscription's
period is on its items (``items.data[0].current_period_end``). There is no
``invoice.charge``, ``invoice.subscription`` or ``charge.invoice`` in this API version,
so the fake has none either.

Each period of a subscription makes one invoice paid by charging the subscription's
default payment method (else the customer's ``invoice_settings.default_payment_method``):
at creation, and at every ``renew`` a test asks for.
"""

from __future__ import annotations

import calendar
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from support.stripe_fake._checkout import CheckoutApi
from support.stripe_fake._errors import (
    StripeError,
    bool_param,
    dict_param,
    int_param,
    list_param,
    metadata_param,
    str_param,
)
from support.stripe_fake._store import LIST, Obj, Route, list_object, takes

__all__ = ["StripeApi"]

_SUBSCRIPTION = takes(
    "customer items default_payment_method metadata payment_behavior off_session description "
    "cancel_at_period_end proration_behavior payment_settings currency "
    "!trial_period_days !trial_end !trial_from_plan !billing_cycle_anchor !collection_method "
    "!days_until_due !coupon !discounts !promotion_code !automatic_tax !default_tax_rates "
    "!add_invoice_items !backdate_start_date !cancel_at !application_fee_percent "
    "!transfer_data !on_behalf_of !pending_invoice_item_interval !billing_thresholds"
)
_SUBSCRIPTION_UPDATE = takes(
    "metadata cancel_at_period_end default_payment_method description cancellation_details "
    "proration_behavior payment_behavior off_session "
    "!items !trial_end !billing_cycle_anchor !pause_collection !cancel_at"
)
_BEHAVIOURS = ("allow_incomplete", "default_incomplete", "error_if_incomplete")


class StripeApi(CheckoutApi):
    """Everything the fake serves: payments, Checkout, and subscriptions with invoices."""

    STATE = (*CheckoutApi.STATE, "intent_invoice")

    def __init__(self, clock: Callable[[], int]) -> None:
        super().__init__(clock)
        self.intent_invoice: dict[str, str] = {}
        self.includes[("invoice", "payments")] = self._invoice_payments

    def routes(self) -> list[Route]:
        return [
            *super().routes(),
            Route("POST /v1/subscriptions", self.create_subscription, _SUBSCRIPTION),
            Route(
                "GET /v1/subscriptions",
                self.list_subscriptions,
                takes(LIST + "customer price status"),
            ),
            Route("GET /v1/subscriptions/{id}", self.retriever("subscription", "subscription")),
            Route("POST /v1/subscriptions/{id}", self.update_subscription, _SUBSCRIPTION_UPDATE),
            Route(
                "DELETE /v1/subscriptions/{id}",
                self.cancel_subscription,
                takes("invoice_now prorate cancellation_details"),
            ),
            Route(
                "GET /v1/invoices", self.list_invoices, takes(LIST + "customer subscription status")
            ),
            Route("GET /v1/invoices/{id}", self.retriever("invoice", "invoice")),
            Route(
                "GET /v1/invoice_payments",
                self.list_invoice_payments,
                takes(LIST + "invoice payment"),
            ),
            Route(
                "GET /v1/invoice_payments/{id}",
                self.retriever("invoice_payment", "invoice_payment"),
            ),
        ]

    def create_subscription(self, params: dict[str, Any]) -> Obj:
        customer_id = str_param(params, "customer", required=True)
        items = list_param(params, "items")
        if not items:
            raise StripeError.bad_param(
                "parameter_missing", "Missing required param: items.", "items"
            )
        behaviour = str_param(params, "payment_behavior") or "allow_incomplete"
        if behaviour not in _BEHAVIOURS:
            raise StripeError.bad_param(
                "parameter_invalid_string",
                f"The fake Stripe supports payment_behavior {', '.join(_BEHAVIOURS)}.",
                "payment_behavior",
            )
        assert customer_id is not None
        customer = self.customer(customer_id, param="customer")
        priced = [self._subscribed_price(item, index) for index, item in enumerate(items)]
        if len({price["currency"] for price, _ in priced}) > 1:
            raise StripeError.invalid("All prices must use the same currency.", param="items")
        pm_id = str_param(params, "default_payment_method")
        if pm_id is not None:
            self._owned_card(customer, pm_id, "default_payment_method")
        payer = pm_id or customer["invoice_settings"]["default_payment_method"]
        due = sum(price["unit_amount"] * quantity for price, quantity in priced)
        if due == 0:
            raise StripeError.bad_param(
                "parameter_invalid_integer",
                "The fake Stripe does not model subscriptions that cost nothing.",
                "items",
            )
        if payer is None and behaviour != "default_incomplete":
            raise StripeError.invalid(
                "This customer has no attached payment source or default payment method. "
                "Please consider adding a default payment method.",
                code="resource_missing",
            )
        start = self.clock()
        end = _after(start, priced[0][0]["recurring"]["interval"])
        sub = self.base(
            "sub",
            "subscription",
            customer=customer_id,
            status="incomplete",
            currency=priced[0][0]["currency"],
            default_payment_method=pm_id,
            description=str_param(params, "description"),
            metadata=metadata_param(params),
            collection_method="charge_automatically",
            cancel_at_period_end=bool_param(params, "cancel_at_period_end"),
            cancel_at=None,
            canceled_at=None,
            ended_at=None,
            cancellation_details={"comment": None, "feedback": None, "reason": None},
            start_date=start,
            billing_cycle_anchor=start,
            latest_invoice=None,
        )
        sub_items = [
            {
                "id": self.new_id("si"),
                "object": "subscription_item",
                "created": start,
                "current_period_start": start,
                "current_period_end": end,
                "metadata": {},
                "price": self.render(price, []),
                "quantity": quantity,
                "subscription": sub["id"],
            }
            for price, quantity in priced
        ]
        sub["items"] = list_object(sub_items, f"/v1/subscription_items?subscription={sub['id']}")
        invoice = self._bill(
            sub, "subscription_create", start, end, charge=behaviour != "default_incomplete"
        )
        if behaviour == "error_if_incomplete" and invoice["status"] != "paid":
            failure = self._failure_of(invoice)
            for object_id in (sub["id"], invoice["id"], invoice["_payment"]):
                self.objects.pop(object_id, None)
            raise failure
        self.emit("customer.subscription.created", sub)
        sub["_announced"] = True  # later changes of status are customer.subscription.updated
        return sub

    def _subscribed_price(self, item: Any, index: int) -> tuple[Obj, int]:
        label = f"items[{index}]"
        if not isinstance(item, dict):
            raise StripeError.bad_param(
                "parameter_invalid_object", f"Invalid object: {label}", label
            )
        price_id = str_param(item, "price")
        if price_id is None:
            price = self.inline_price(dict_param(item, "price_data"), f"{label}[price_data]")
        else:
            price = self.get("price", price_id, label="price", param=f"{label}[price]")
        if price["type"] != "recurring":
            raise StripeError.invalid(
                "The price specified is set to `type=one_time` but this field only accepts "
                "prices with `type=recurring`.",
                param=f"{label}[price]",
            )
        quantity = int_param(item, "quantity", label=f"{label}[quantity]")
        return price, 1 if quantity is None else quantity

    def _owned_card(self, customer: Obj, pm_id: str, param: str) -> Obj:
        pm = self.objects.get(pm_id)
        if pm is None or pm.get("customer") != customer["id"]:
            raise StripeError.invalid(
                f"The customer does not have a payment method with the ID {pm_id}. The payment "
                "method must be attached to the customer.",
                param=param,
                code="resource_missing",
            )
        return pm

    def list_subscriptions(self, params: dict[str, Any]) -> Obj:
        """By customer, price and status (``all``: any); by default all but the canceled."""
        customer_id = str_param(params, "customer")
        price_id = str_param(params, "price")
        status = str_param(params, "status")
        found = [
            sub
            for sub in self.of_kind("subscription")
            if customer_id in (None, sub["customer"])
            and price_id in (None, *(item["price"]["id"] for item in sub["items"]["data"]))
            and (
                status == "all"
                or sub["status"] == status
                or (status is None and sub["status"] != "canceled")
            )
        ]
        return self.page(found, params, "/v1/subscriptions")

    def update_subscription(self, params: dict[str, Any], sub_id: str) -> Obj:
        sub = self.get("subscription", sub_id, label="subscription")
        if sub["status"] == "canceled" and set(params) - {
            "metadata",
            "cancellation_details",
            "expand",
        }:
            raise StripeError.invalid(
                "A canceled subscription can only update its cancellation_details and metadata."
            )
        before = {
            key: sub[key]
            for key in ("metadata", "cancel_at_period_end", "default_payment_method", "description")
        }
        sub["metadata"] = metadata_param(params, sub["metadata"])
        if "cancel_at_period_end" in params:
            sub["cancel_at_period_end"] = bool_param(params, "cancel_at_period_end")
        if "description" in params:
            sub["description"] = str_param(params, "description")
        pm_id = str_param(params, "default_payment_method")
        if pm_id is not None:
            self._owned_card(self.objects[sub["customer"]], pm_id, "default_payment_method")
            sub["default_payment_method"] = pm_id
        changed = {key: value for key, value in before.items() if sub[key] != value}
        if changed:
            self.emit("customer.subscription.updated", sub, changed)
        return sub

    def cancel_subscription(self, params: dict[str, Any], sub_id: str) -> Obj:
        """Cancels now; an already canceled subscription is 404, as in Stripe."""
        sub = self.get("subscription", sub_id, label="subscription")
        if sub["status"] == "canceled":
            raise StripeError.missing("subscription", sub_id)
        self._end(sub, "cancellation_requested")
        details = dict_param(params, "cancellation_details")
        for key in ("comment", "feedback"):
            if key in details:
                sub["cancellation_details"][key] = details[key] or None
        return sub

    def _end(self, sub: Obj, reason: str) -> None:
        sub["status"] = "canceled"
        sub["canceled_at"] = sub["ended_at"] = self.clock()
        sub["cancellation_details"]["reason"] = reason
        self.emit("customer.subscription.deleted", sub)

    def on_customer_deleted(self, customer_id: str) -> None:
        for sub in self.of_kind("subscription"):
            if sub["customer"] == customer_id and sub["status"] != "canceled":
                self._end(sub, "cancellation_requested")

    def renew(self, sub_id: str) -> Obj:
        """The subscription's next period starts: its invoice, charged as Stripe would."""
        sub = self.get("subscription", sub_id, label="subscription")
        if sub["status"] not in ("active", "past_due"):
            raise ValueError(f"subscription {sub_id} is {sub['status']}: it does not renew")
        item = sub["items"]["data"][0]
        start = item["current_period_end"]
        end = _after(start, item["price"]["recurring"]["interval"])
        for each in sub["items"]["data"]:
            each["current_period_start"], each["current_period_end"] = start, end
        invoice = self._bill(sub, "subscription_cycle", start, end, charge=True)
        if invoice["status"] != "paid" and sub["status"] == "active":
            sub["status"] = "past_due"
            self.emit("customer.subscription.updated", sub, {"status": "active"})
        return invoice

    # -- invoices ------------------------------------------------------------------------

    def _bill(self, sub: Obj, reason: str, start: int, end: int, *, charge: bool) -> Obj:
        """The invoice of one period of ``sub``, and its payment if ``charge``."""
        lines = [
            {
                "id": self.new_id("il"),
                "object": "line_item",
                "amount": item["price"]["unit_amount"] * item["quantity"],
                "currency": sub["currency"],
                "description": f"{item['quantity']} x {self._product_name(item['price'])}",
                "period": {"start": start, "end": end},
                "pricing": {
                    "type": "price_details",
                    "price_details": {
                        "price": item["price"]["id"],
                        "product": item["price"]["product"],
                    },
                    "unit_amount_decimal": item["price"]["unit_amount_decimal"],
                },
                "quantity": item["quantity"],
            }
            for item in sub["items"]["data"]
        ]
        due = sum(line["amount"] for line in lines)
        invoice = self.base(
            "in",
            "invoice",
            customer=sub["customer"],
            currency=sub["currency"],
            status="open",
            amount_due=due,
            amount_paid=0,
            amount_remaining=due,
            attempt_count=0,
            billing_reason=reason,
            collection_method="charge_automatically",
            description=None,
            metadata={},
            parent={
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {
                    "metadata": dict(sub["metadata"]),
                    "subscription": sub["id"],
                },
            },
            period_start=start,
            period_end=end,
            status_transitions={"finalized_at": self.clock(), "paid_at": None, "voided_at": None},
        )
        invoice["lines"] = list_object(lines, f"/v1/invoices/{invoice['id']}/lines")
        invoice["hosted_invoice_url"] = f"https://invoice.stripe.com/i/{invoice['id']}"
        invoice["invoice_pdf"] = f"https://pay.stripe.com/invoice/{invoice['id']}/pdf"
        sub["latest_invoice"] = invoice["id"]
        customer = self.objects[sub["customer"]]
        intent = self.create_intent(
            amount=due,
            currency=sub["currency"],
            customer=sub["customer"],
            payment_method=sub["default_payment_method"]
            or customer["invoice_settings"]["default_payment_method"],
            description="Subscription creation"
            if reason == "subscription_create"
            else "Subscription update",
            metadata={},
            receipt_email=None,
            setup_future_usage=None,
        )
        self.intent_invoice[intent["id"]] = invoice["id"]
        payment = self.base(
            "inpay",
            "invoice_payment",
            invoice=invoice["id"],
            amount_paid=None,
            amount_requested=due,
            currency=sub["currency"],
            is_default=True,
            status="open",
            payment={"type": "payment_intent", "payment_intent": intent["id"]},
            status_transitions={"canceled_at": None, "paid_at": None},
        )
        invoice["_payment"] = payment["id"]
        self.emit("invoice.created", invoice)
        self.emit("invoice.finalized", invoice)
        if charge and intent["payment_method"] is not None:
            invoice["attempt_count"] = 1
            # A failure leaves the invoice open: on_intent_settled recorded it.
            with contextlib.suppress(StripeError):
                self.confirm(intent, off_session=False)
        return invoice

    def _product_name(self, price: Obj) -> str:
        return str(self.objects[price["product"]]["name"])

    def on_intent_settled(self, intent: Obj, *, error: StripeError | None) -> None:
        invoice_id = self.intent_invoice.get(intent["id"])
        if invoice_id is None or invoice_id not in self.objects:
            return
        invoice = self.objects[invoice_id]
        if error is not None:
            self.emit("invoice.payment_failed", invoice)
            return
        self._paid(invoice)

    def _paid(self, invoice: Obj) -> None:
        now = self.clock()
        invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0)
        invoice["status_transitions"]["paid_at"] = now
        payment = self.objects[invoice["_payment"]]
        payment.update(status="paid", amount_paid=invoice["amount_due"])
        payment["status_transitions"]["paid_at"] = now
        self.emit("invoice.paid", invoice)
        self.emit("invoice.payment_succeeded", invoice)
        sub = self.objects[invoice["parent"]["subscription_details"]["subscription"]]
        if sub["status"] in ("incomplete", "past_due"):
            previous = sub["status"]
            sub["status"] = "active"
            if sub.get("_announced"):
                self.emit("customer.subscription.updated", sub, {"status": previous})

    def _failure_of(self, invoice: Obj) -> StripeError:
        payment = self.objects[invoice["_payment"]]
        intent = self.objects[payment["payment"]["payment_intent"]]
        last = intent["last_payment_error"]
        if last is None:  # 3-D Secure asked for: the customer is not there to pass it
            return StripeError(
                402,
                "card_error",
                "Your card was declined. This transaction requires authentication.",
                code="authentication_required",
                decline_code="authentication_required",
            )
        return StripeError(
            402, "card_error", last["message"], code=last["code"], decline_code=last["decline_code"]
        )

    def _invoice_payments(self, invoice: Obj) -> Obj:
        stored = self.objects[invoice["id"]]
        payment = self.objects[stored["_payment"]]
        return list_object([payment], f"/v1/invoices/{invoice['id']}/payments")

    def list_invoices(self, params: dict[str, Any]) -> Obj:
        return self.filtered(
            "invoice",
            params,
            ("customer", "subscription", "status"),
            {"subscription": _subscription_of},
        )

    def list_invoice_payments(self, params: dict[str, Any]) -> Obj:
        """By ``invoice``, or by ``payment[type]=payment_intent&payment[payment_intent]=``."""
        invoice_id = str_param(params, "invoice")
        payment = dict_param(params, "payment")
        intent_id = str_param(payment, "payment_intent")
        found = [
            each
            for each in self.of_kind("invoice_payment")
            if invoice_id in (None, each["invoice"])
            and intent_id in (None, each["payment"]["payment_intent"])
        ]
        return self.page(found, params, "/v1/invoice_payments")


def _subscription_of(invoice: Obj) -> str:
    """The subscription an invoice bills: in this API version, under ``parent``."""
    return str(invoice["parent"]["subscription_details"]["subscription"])


def _after(start: int, interval: str) -> int:
    """``start`` plus one ``interval`` (day, week, month, year), months by the calendar."""
    moment = datetime.fromtimestamp(start, UTC)
    if interval in ("day", "week"):
        return int((moment + timedelta(days=1 if interval == "day" else 7)).timestamp())
    months = 12 if interval == "year" else 1
    year, month = divmod(moment.month - 1 + months, 12)
    year += moment.year
    month += 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())
