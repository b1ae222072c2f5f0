"""Checkout Sessions in the fake Stripe: ``payment`` and ``setup`` modes.

A session is created open; ``complete_checkout`` plays the customer on Stripe's page
(3-D Secure passed, as the page would ask for it): in payment mode a PaymentIntent for the
total is confirmed and charged, in setup mode a SetupIntent saves the card to the
customer. Line items come from ``price`` or ``price_data`` (with ``product_data``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from support.stripe_fake._errors import (
    StripeError,
    dict_param,
    int_param,
    list_param,
    metadata_param,
    str_param,
)
from support.stripe_fake._prices import PricesApi
from support.stripe_fake._store import LIST, Obj, Route, takes

__all__ = ["CheckoutApi"]

_SESSION = takes(
    "mode line_items customer customer_email customer_creation client_reference_id metadata "
    "success_url cancel_url return_url ui_mode currency payment_method_types "
    "payment_intent_data setup_intent_data saved_payment_method_options "
    "billing_address_collection expires_at locale submit_type invoice_creation "
    "consent_collection payment_method_collection custom_text "
    "!allow_promotion_codes !automatic_tax !discounts !subscription_data"
)


class CheckoutApi(PricesApi):
    """Checkout Sessions."""

    def __init__(self, clock: Callable[[], int]) -> None:
        super().__init__(clock)
        self.includes[("checkout.session", "line_items")] = self._session_line_items

    def routes(self) -> list[Route]:
        return [
            *super().routes(),
            Route("POST /v1/checkout/sessions", self.create_checkout_session, _SESSION),
            Route(
                "GET /v1/checkout/sessions",
                self.list_checkout_sessions,
                takes(LIST + "customer payment_intent status"),
            ),
            Route(
                "GET /v1/checkout/sessions/{id}",
                self.retriever("checkout.session", "checkout.session"),
            ),
            Route(
                "GET /v1/checkout/sessions/{id}/line_items",
                self.list_session_line_items,
                takes(LIST),
            ),
            Route("POST /v1/checkout/sessions/{id}/expire", self.expire_checkout_session),
        ]

    def create_checkout_session(self, params: dict[str, Any]) -> Obj:
        mode = str_param(params, "mode", required=True)
        if mode not in ("payment", "setup"):
            raise StripeError.bad_param(
                "parameter_invalid_string",
                f"The fake Stripe supports Checkout in payment and setup modes, not {mode!r}.",
                "mode",
            )
        customer_id = str_param(params, "customer")
        if customer_id is not None:
            self.customer(customer_id, param="customer")
        items = list_param(params, "line_items")
        if mode == "setup" and items:
            raise StripeError.bad_param(
                "parameter_unknown", "You can not pass `line_items` in `setup` mode.", "line_items"
            )
        if mode == "payment" and not items:
            raise StripeError.bad_param(
                "parameter_missing",
                "`line_items` is required in `payment` mode.",
                "line_items",
            )
        lines = [self._line_item(item, index) for index, item in enumerate(items)]
        currencies = {line["currency"] for line in lines}
        if len(currencies) > 1:
            raise StripeError.invalid(
                "All line items must use the same currency.", param="line_items"
            )
        total = sum(line["amount_total"] for line in lines) if lines else None
        session = self.base(
            "cs_test",
            "checkout.session",
            mode=mode,
            status="open",
            payment_status="no_payment_required" if mode == "setup" else "unpaid",
            customer=customer_id,
            customer_email=str_param(params, "customer_email"),
            customer_creation=str_param(params, "customer_creation"),
            client_reference_id=str_param(params, "client_reference_id"),
            metadata=metadata_param(params),
            success_url=str_param(params, "success_url"),
            cancel_url=str_param(params, "cancel_url"),
            amount_subtotal=total,
            amount_total=total,
            currency=currencies.pop() if currencies else str_param(params, "currency"),
            payment_intent=None,
            setup_intent=None,
            subscription=None,
            payment_method_types=list_param(params, "payment_method_types") or ["card"],
            expires_at=self.clock() + 24 * 3600,
        )
        session["url"] = f"https://checkout.stripe.com/c/pay/{session['id']}"
        session["_lines"] = lines
        session["_payment_intent_data"] = dict_param(params, "payment_intent_data")
        session["_setup_intent_data"] = dict_param(params, "setup_intent_data")
        return session

    def _line_item(self, item: Any, index: int) -> Obj:
        label = f"line_items[{index}]"
        if not isinstance(item, dict):
            raise StripeError.bad_param(
                "parameter_invalid_object", f"Invalid object: {label}", label
            )
        quantity = int_param(item, "quantity", label=f"{label}[quantity]") or 1
        price_id = str_param(item, "price")
        if price_id is not None:
            price = self.get("price", price_id, label="price", param=f"{label}[price]")
        else:
            price = self.inline_price(dict_param(item, "price_data"), f"{label}[price_data]")
        return {
            "id": self.new_id("li"),
            "object": "item",
            "amount_subtotal": price["unit_amount"] * quantity,
            "amount_total": price["unit_amount"] * quantity,
            "currency": price["currency"],
            "description": self.objects[price["product"]]["name"],
            "price": price["id"],
            "quantity": quantity,
        }

    def _session_line_items(self, session: Obj) -> Obj:
        stored = self.objects[session["id"]]
        lines = [
            {**line, "price": self.render(self.objects[line["price"]], [])}
            for line in stored["_lines"]
        ]
        return {
            "object": "list",
            "data": lines,
            "has_more": False,
            "url": f"/v1/checkout/sessions/{session['id']}/line_items",
        }

    def list_session_line_items(self, params: dict[str, Any], session_id: str) -> Obj:
        session = self.get("checkout.session", session_id, label="checkout.session")
        return self._session_line_items(session)

    def list_checkout_sessions(self, params: dict[str, Any]) -> Obj:
        return self.filtered("checkout.session", params, ("customer", "payment_intent", "status"))

    def expire_checkout_session(self, params: dict[str, Any], session_id: str) -> Obj:
        session = self.get("checkout.session", session_id, label="checkout.session")
        if session["status"] != "open":
            raise StripeError.invalid(
                f'Only Checkout Sessions with a status in ["open"] can be expired. This '
                f'Checkout Session has a status of "{session["status"]}".'
            )
        session["status"] = "expired"
        self.emit("checkout.session.expired", session)
        return session

    def complete_checkout(self, session_id: str, pm_id: str) -> Obj:
        """The customer fills in the Checkout page with ``pm_id`` (3-D Secure passed)."""
        session = self.get("checkout.session", session_id, label="checkout.session")
        if session["status"] != "open":
            raise ValueError(f"checkout session {session_id} is {session['status']}, not open")
        pm = self.payment_method(pm_id)
        if self.cards[pm["id"]].outcome == "declines":
            raise ValueError("a declined card cannot complete Checkout: the page shows the error")
        if session["customer"] is None and session["customer_creation"] == "always":
            session["customer"] = self.create_customer({"email": session["customer_email"]})["id"]
        if session["mode"] == "setup":
            data = session["_setup_intent_data"]
            setup = self.create_setup_intent(
                {"customer": session["customer"], "metadata": data.get("metadata", {})}
            )
            setup["payment_method"] = pm["id"]
            self.authenticated.add(setup["id"])
            self._confirm_setup(setup)
            session["setup_intent"] = setup["id"]
        else:
            data = session["_payment_intent_data"]
            intent = self.create_intent(
                amount=session["amount_total"],
                currency=session["currency"],
                customer=session["customer"],
                payment_method=pm["id"],
                description=data.get("description"),
                metadata=metadata_param(data),
                receipt_email=session["customer_email"],
                setup_future_usage=data.get("setup_future_usage"),
            )
            self.authenticated.add(intent["id"])
            self.confirm(intent, off_session=False)
            session["payment_intent"] = intent["id"]
            session["payment_status"] = "paid"
        session["status"] = "complete"
        self.emit("checkout.session.completed", session)
        return session
