"""Customers and their cards (payment methods) in the fake Stripe.

What a card does is decided by the :class:`Card` behind its payment method: it succeeds,
declines (with a decline code), or asks for 3-D Secure. Stripe's test payment methods
work as in test mode: ``pm_card_visa``, ``pm_card_mastercard``, ``pm_card_chargeDeclined``,
``pm_card_chargeDeclinedInsufficientFunds`` and ``pm_card_authenticationRequired`` each
make a new payment method when used.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from support.stripe_fake._errors import StripeError, dict_param, metadata_param, str_param
from support.stripe_fake._store import LIST, Obj, Route, StripeStore, takes

__all__ = ["TEST_CARDS", "Card", "CustomersApi", "Outcome"]

Outcome = Literal["succeeds", "declines", "requires_action"]


@dataclass(frozen=True)
class Card:
    """A card as the fake's bank sees it: what it shows, and what charging it does."""

    brand: str = "visa"
    last4: str = "4242"
    exp_month: int = 12
    exp_year: int = 2034
    outcome: Outcome = "succeeds"
    decline_code: str = "generic_decline"
    """Why a card whose outcome is ``declines`` is declined (``insufficient_funds``, ...)."""


TEST_CARDS: dict[str, Card] = {
    "pm_card_visa": Card(),
    "pm_card_mastercard": Card(brand="mastercard", last4="4444"),
    "pm_card_chargeDeclined": Card(last4="0002", outcome="declines"),
    "pm_card_chargeDeclinedInsufficientFunds": Card(
        last4="9995", outcome="declines", decline_code="insufficient_funds"
    ),
    "pm_card_authenticationRequired": Card(last4="3184", outcome="requires_action"),
}
"""Stripe's test payment methods the fake knows: each use makes a new payment method."""

_CUSTOMER = (
    "address balance description email invoice_prefix invoice_settings metadata name "
    "next_invoice_sequence phone preferred_locales shipping tax tax_exempt tax_id_data "
    "!test_clock !cash_balance !coupon !promotion_code !source "
)


class CustomersApi(StripeStore):
    """Customers and payment methods."""

    STATE = (*StripeStore.STATE, "cards")

    def __init__(self, clock: Callable[[], int]) -> None:
        super().__init__(clock)
        self.cards: dict[str, Card] = {}

    def routes(self) -> list[Route]:
        card_list = takes(LIST + "type")
        return [
            *super().routes(),
            Route("POST /v1/customers", self.create_customer, takes(_CUSTOMER + "payment_method")),
            Route("GET /v1/customers", self.list_customers, takes(LIST + "email")),
            Route("GET /v1/customers/{id}", self.retrieve_customer),
            Route("POST /v1/customers/{id}", self.update_customer, takes(_CUSTOMER)),
            Route("DELETE /v1/customers/{id}", self.delete_customer),
            Route("GET /v1/customers/{id}/payment_methods", self.list_customer_cards, card_list),
            Route(
                "GET /v1/payment_methods", self.list_payment_methods, takes(LIST + "customer type")
            ),
            Route("GET /v1/payment_methods/{id}", self.retrieve_payment_method),
            Route(
                "POST /v1/payment_methods/{id}/attach",
                self.attach_payment_method,
                takes("customer"),
            ),
            Route("POST /v1/payment_methods/{id}/detach", self.detach_payment_method),
        ]

    # -- lookups -------------------------------------------------------------------------

    def customer(self, customer_id: str, *, param: str | None = None) -> Obj:
        customer = self.get("customer", customer_id, label="customer", param=param)
        if customer.get("deleted"):
            raise StripeError.missing("customer", customer_id, param=param)
        return customer

    def payment_method(self, pm_id: str, *, param: str | None = None) -> Obj:
        test_card = TEST_CARDS.get(pm_id)
        if test_card is not None:
            return self.add_card(test_card)
        return self.get("payment_method", pm_id, label="PaymentMethod", param=param)

    def add_card(self, card: Card) -> Obj:
        """A new payment method for ``card``, attached to no customer."""
        pm = self.base(
            "pm",
            "payment_method",
            type="card",
            card={
                "brand": card.brand,
                "last4": card.last4,
                "exp_month": card.exp_month,
                "exp_year": card.exp_year,
                "funding": "credit",
                "country": "US",
                "fingerprint": secrets.token_hex(8),
            },
            customer=None,
            billing_details={"address": None, "email": None, "name": None, "phone": None},
            allow_redisplay="unspecified",
            metadata={},
        )
        self.cards[pm["id"]] = card
        return pm

    # -- customers -----------------------------------------------------------------------

    def create_customer(self, params: dict[str, Any]) -> Obj:
        customer = self.base(
            "cus",
            "customer",
            email=str_param(params, "email"),
            name=str_param(params, "name"),
            description=str_param(params, "description"),
            phone=str_param(params, "phone"),
            metadata=metadata_param(params),
            invoice_settings={
                "default_payment_method": None,
                "custom_fields": None,
                "footer": None,
            },
            balance=0,
            currency=None,
            default_source=None,
            delinquent=False,
        )
        self.emit("customer.created", customer)
        pm_id = str_param(params, "payment_method")
        if pm_id is not None:
            self.attach(self.payment_method(pm_id, param="payment_method"), customer)
        self._update_default(customer, params)
        return customer

    def list_customers(self, params: dict[str, Any]) -> Obj:
        email = str_param(params, "email")
        found = [
            c
            for c in self.of_kind("customer")
            if not c.get("deleted") and (email is None or c["email"] == email)
        ]
        return self.page(found, params, "/v1/customers")

    def retrieve_customer(self, params: dict[str, Any], customer_id: str) -> Obj:
        return self.get("customer", customer_id, label="customer")

    def update_customer(self, params: dict[str, Any], customer_id: str) -> Obj:
        customer = self.customer(customer_id)
        before = {key: customer[key] for key in ("email", "name", "description", "phone")}
        before["metadata"] = customer["metadata"]
        before["invoice_settings"] = dict(customer["invoice_settings"])
        for key in ("email", "name", "description", "phone"):
            if key in params:
                customer[key] = str_param(params, key)
        customer["metadata"] = metadata_param(params, customer["metadata"])
        self._update_default(customer, params)
        changed = {key: value for key, value in before.items() if customer[key] != value}
        if changed:
            self.emit("customer.updated", customer, changed)
        return customer

    def _update_default(self, customer: Obj, params: dict[str, Any]) -> None:
        settings = dict_param(params, "invoice_settings")
        if "default_payment_method" not in settings:
            return
        pm_id = settings["default_payment_method"] or None
        if pm_id is not None:
            pm = self.objects.get(pm_id)
            if pm is None or pm.get("customer") != customer["id"]:
                raise StripeError.invalid(
                    f"The customer does not have a payment method with the ID {pm_id}. The "
                    "payment method must be attached to the customer.",
                    param="invoice_settings[default_payment_method]",
                    code="resource_missing",
                )
        customer["invoice_settings"]["default_payment_method"] = pm_id

    def delete_customer(self, params: dict[str, Any], customer_id: str) -> Obj:
        """Deleting cancels the customer's subscriptions and detaches its cards, as Stripe does."""
        customer = self.customer(customer_id)
        self.on_customer_deleted(customer_id)
        for pm in self.of_kind("payment_method"):
            if pm["customer"] == customer_id:
                pm["customer"] = None
        tombstone: Obj = {"id": customer_id, "object": "customer", "deleted": True}
        self.objects[customer_id] = tombstone
        self.emit("customer.deleted", customer)
        return tombstone

    def on_customer_deleted(self, customer_id: str) -> None:
        """What else goes with a deleted customer (billing cancels its subscriptions)."""

    # -- payment methods -----------------------------------------------------------------

    def list_payment_methods(self, params: dict[str, Any]) -> Obj:
        customer_id = str_param(params, "customer")
        if customer_id is not None:
            self.customer(customer_id, param="customer")
        return self._cards_of(customer_id, params, "/v1/payment_methods")

    def list_customer_cards(self, params: dict[str, Any], customer_id: str) -> Obj:
        self.customer(customer_id)
        return self._cards_of(customer_id, params, f"/v1/customers/{customer_id}/payment_methods")

    def _cards_of(self, customer_id: str | None, params: dict[str, Any], url: str) -> Obj:
        kind = str_param(params, "type")
        found = [
            pm
            for pm in self.of_kind("payment_method")
            if (customer_id is None or pm["customer"] == customer_id)
            and (kind is None or pm["type"] == kind)
        ]
        return self.page(found, params, url)

    def retrieve_payment_method(self, params: dict[str, Any], pm_id: str) -> Obj:
        return self.payment_method(pm_id)

    def attach_payment_method(self, params: dict[str, Any], pm_id: str) -> Obj:
        customer_id = str_param(params, "customer", required=True)
        assert customer_id is not None
        customer = self.customer(customer_id, param="customer")
        return self.attach(self.payment_method(pm_id), customer)

    def attach(self, pm: Obj, customer: Obj) -> Obj:
        if pm["customer"] == customer["id"]:
            return pm
        if pm["customer"] is not None:
            raise StripeError.invalid(
                "The payment method you provided has already been attached to a customer.",
                param="payment_method",
            )
        pm["customer"] = customer["id"]
        self.emit("payment_method.attached", pm)
        return pm

    def detach_payment_method(self, params: dict[str, Any], pm_id: str) -> Obj:
        pm = self.payment_method(pm_id)
        customer_id = pm["customer"]
        if customer_id is None:
            raise StripeError.invalid(
                "The payment method you provided is not attached to a customer so detachment "
                "is impossible."
            )
        pm["customer"] = None
        customer = self.objects[customer_id]
        if customer.get("invoice_settings", {}).get("default_payment_method") == pm_id:
            customer["invoice_settings"]["default_payment_method"] = None
        self.emit("payment_method.detached", pm, {"customer": customer_id})
        return pm
