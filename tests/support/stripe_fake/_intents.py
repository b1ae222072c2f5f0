"""SetupIntents, PaymentIntents and the charges they make, in the fake Stripe.

Confirming an intent asks its card (see ``_customers.Card``): a card that succeeds makes a
succeeded charge; one that declines makes a failed charge and answers 402
``card_declined``; one that needs 3-D Secure leaves the intent ``requires_action`` until
the test plays the customer (``authenticate`` / ``fail_authentication``), or, off session
(the customer is away), fails with 402 ``authentication_required``.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from typing import Any

from support.stripe_fake._customers import CustomersApi
from support.stripe_fake._errors import (
    StripeError,
    bool_param,
    int_param,
    list_param,
    metadata_param,
    str_param,
)
from support.stripe_fake._store import LIST, Obj, Route, takes

__all__ = ["IntentsApi"]

_SETUP_INTENT = takes(
    "automatic_payment_methods confirm customer description metadata payment_method "
    "payment_method_options payment_method_types return_url usage mandate_data use_stripe_sdk "
    "!single_use !on_behalf_of !flow_directions !attach_to_self !confirmation_token"
)
_PAYMENT_INTENT = takes(
    "amount currency customer payment_method confirm off_session description metadata "
    "receipt_email setup_future_usage payment_method_types automatic_payment_methods "
    "return_url statement_descriptor statement_descriptor_suffix error_on_requires_action "
    "mandate_data payment_method_options shipping use_stripe_sdk radar_options "
    "!capture_method !confirmation_method !payment_method_data !on_behalf_of !transfer_data "
    "!application_fee_amount !confirmation_token"
)
_UNSETTLED = ("requires_payment_method", "requires_confirmation", "requires_action")
"""The statuses of an intent that can still be confirmed or cancelled."""

_CONFIRM = takes(
    "payment_method off_session return_url receipt_email setup_future_usage mandate_data "
    "payment_method_options error_on_requires_action use_stripe_sdk radar_options shipping "
    "payment_method_types !payment_method_data !capture_method !confirmation_token"
)


class IntentsApi(CustomersApi):
    """SetupIntents, PaymentIntents, charges, and 3-D Secure."""

    STATE = (*CustomersApi.STATE, "authenticated")

    def __init__(self, clock: Callable[[], int]) -> None:
        super().__init__(clock)
        self.authenticated: set[str] = set()

    def routes(self) -> list[Route]:
        secret = takes("client_secret")
        cancel = takes("cancellation_reason")
        return [
            *super().routes(),
            Route("POST /v1/setup_intents", self.create_setup_intent, _SETUP_INTENT),
            Route(
                "GET /v1/setup_intents",
                self.list_setup_intents,
                takes(LIST + "customer payment_method"),
            ),
            Route(
                "GET /v1/setup_intents/{id}", self.retriever("setup_intent", "setupintent"), secret
            ),
            Route("POST /v1/setup_intents/{id}/confirm", self.confirm_setup_intent, _CONFIRM),
            Route("POST /v1/setup_intents/{id}/cancel", self.cancel_setup_intent, cancel),
            Route("POST /v1/payment_intents", self.create_payment_intent, _PAYMENT_INTENT),
            Route("GET /v1/payment_intents", self.list_payment_intents, takes(LIST + "customer")),
            Route(
                "GET /v1/payment_intents/{id}",
                self.retriever("payment_intent", "payment_intent"),
                secret,
            ),
            Route("POST /v1/payment_intents/{id}/confirm", self.confirm_payment_intent, _CONFIRM),
            Route("POST /v1/payment_intents/{id}/cancel", self.cancel_payment_intent, cancel),
            Route("GET /v1/charges", self.list_charges, takes(LIST + "customer payment_intent")),
            Route("GET /v1/charges/{id}", self.retriever("charge", "charge")),
        ]

    # -- setup intents -------------------------------------------------------------------

    def create_setup_intent(self, params: dict[str, Any]) -> Obj:
        customer_id = str_param(params, "customer")
        if customer_id is not None:
            self.customer(customer_id, param="customer")
        pm_id = str_param(params, "payment_method")
        pm = self.payment_method(pm_id, param="payment_method") if pm_id else None
        intent = self.base(
            "seti",
            "setup_intent",
            customer=customer_id,
            payment_method=pm["id"] if pm else None,
            status="requires_confirmation" if pm else "requires_payment_method",
            usage=str_param(params, "usage") or "off_session",
            description=str_param(params, "description"),
            metadata=metadata_param(params),
            payment_method_types=list_param(params, "payment_method_types") or ["card"],
            next_action=None,
            last_setup_error=None,
            cancellation_reason=None,
        )
        intent["client_secret"] = f"{intent['id']}_secret_{secrets.token_hex(12)}"
        self.emit("setup_intent.created", intent)
        if bool_param(params, "confirm"):
            self._confirm_setup(intent)
        return intent

    def list_setup_intents(self, params: dict[str, Any]) -> Obj:
        return self.filtered("setup_intent", params, ("customer", "payment_method"))

    def confirm_setup_intent(self, params: dict[str, Any], intent_id: str) -> Obj:
        intent = self.get("setup_intent", intent_id, label="setupintent")
        _expect_status(intent, "SetupIntent", "requires_payment_method", "requires_confirmation")
        pm_id = str_param(params, "payment_method")
        if pm_id is not None:
            intent["payment_method"] = self.payment_method(pm_id, param="payment_method")["id"]
        if intent["payment_method"] is None:
            raise _no_payment_method("SetupIntent", "setup_intent_unexpected_state")
        self._confirm_setup(intent)
        return intent

    def _confirm_setup(self, intent: Obj) -> None:
        pm = self.objects[intent["payment_method"]]
        card = self.cards[pm["id"]]
        intent["last_setup_error"] = None
        if card.outcome == "declines":
            error = StripeError.card_declined(card.decline_code)
            intent["status"] = "requires_payment_method"
            intent["last_setup_error"] = _error_object(error, pm)
            self.emit("setup_intent.setup_failed", intent)
            error.extra["setup_intent"] = self.render(intent, [])
            raise error
        if card.outcome == "requires_action" and intent["id"] not in self.authenticated:
            intent["status"] = "requires_action"
            intent["next_action"] = _three_d_secure()
            self.emit("setup_intent.requires_action", intent)
            return
        intent["status"] = "succeeded"
        intent["next_action"] = None
        if intent["customer"] is not None:
            self.attach(pm, self.objects[intent["customer"]])
        self.emit("setup_intent.succeeded", intent)

    def cancel_setup_intent(self, params: dict[str, Any], intent_id: str) -> Obj:
        intent = self.get("setup_intent", intent_id, label="setupintent")
        _expect_status(intent, "SetupIntent", *_UNSETTLED)
        intent["status"] = "canceled"
        intent["cancellation_reason"] = str_param(params, "cancellation_reason")
        self.emit("setup_intent.canceled", intent)
        return intent

    # -- payment intents and charges -----------------------------------------------------

    def create_payment_intent(self, params: dict[str, Any]) -> Obj:
        amount = int_param(params, "amount", required=True)
        currency = str_param(params, "currency", required=True)
        assert amount is not None and currency is not None
        if amount < 50:
            raise StripeError.bad_param(
                "amount_too_small", f"Amount must be at least $0.50 {currency}", "amount"
            )
        customer_id = str_param(params, "customer")
        if customer_id is not None:
            self.customer(customer_id, param="customer")
        pm_id = str_param(params, "payment_method")
        pm = self.payment_method(pm_id, param="payment_method") if pm_id else None
        if pm is not None and pm["customer"] not in (None, customer_id):
            raise StripeError.invalid(
                "The provided PaymentMethod belongs to a different Customer.",
                param="payment_method",
            )
        intent = self.create_intent(
            amount=amount,
            currency=currency.lower(),
            customer=customer_id,
            payment_method=pm["id"] if pm else None,
            description=str_param(params, "description"),
            metadata=metadata_param(params),
            receipt_email=str_param(params, "receipt_email"),
            setup_future_usage=str_param(params, "setup_future_usage"),
        )
        if bool_param(params, "confirm"):
            if pm is None:
                raise _no_payment_method("PaymentIntent", "payment_intent_unexpected_state")
            self.confirm(intent, off_session=_off_session(params))
        return intent

    def create_intent(self, **fields: Any) -> Obj:
        """A stored PaymentIntent (unconfirmed) with ``fields``."""
        intent = self.base(
            "pi",
            "payment_intent",
            amount_capturable=0,
            amount_received=0,
            capture_method="automatic",
            confirmation_method="automatic",
            latest_charge=None,
            last_payment_error=None,
            next_action=None,
            payment_method_types=["card"],
            canceled_at=None,
            cancellation_reason=None,
            **fields,
        )
        intent["status"] = (
            "requires_confirmation" if intent["payment_method"] else "requires_payment_method"
        )
        intent["client_secret"] = f"{intent['id']}_secret_{secrets.token_hex(12)}"
        self.emit("payment_intent.created", intent)
        return intent

    def list_payment_intents(self, params: dict[str, Any]) -> Obj:
        return self.filtered("payment_intent", params, ("customer",))

    def confirm_payment_intent(self, params: dict[str, Any], intent_id: str) -> Obj:
        intent = self.get("payment_intent", intent_id, label="payment_intent")
        _expect_status(intent, "PaymentIntent", *_UNSETTLED)
        pm_id = str_param(params, "payment_method")
        if pm_id is not None:
            intent["payment_method"] = self.payment_method(pm_id, param="payment_method")["id"]
        if intent["payment_method"] is None:
            raise _no_payment_method("PaymentIntent", "payment_intent_unexpected_state")
        for key in ("receipt_email", "setup_future_usage"):
            if key in params:
                intent[key] = str_param(params, key)
        self.confirm(intent, off_session=_off_session(params))
        return intent

    def confirm(self, intent: Obj, *, off_session: bool) -> None:
        """Charges the intent's card; a declined card raises the 402 Stripe answers."""
        pm = self.objects[intent["payment_method"]]
        card = self.cards[pm["id"]]
        intent["last_payment_error"] = None
        intent["next_action"] = None
        if card.outcome == "requires_action" and intent["id"] not in self.authenticated:
            if not off_session:
                intent["status"] = "requires_action"
                intent["next_action"] = _three_d_secure()
                self.emit("payment_intent.requires_action", intent)
                return
            error = StripeError(
                402,
                "card_error",
                "Your card was declined. This transaction requires authentication.",
                code="authentication_required",
                decline_code="authentication_required",
            )
            self._fail(intent, pm, error)
        if card.outcome == "declines":
            self._fail(intent, pm, StripeError.card_declined(card.decline_code))
        self._succeed(intent, pm)

    def _succeed(self, intent: Obj, pm: Obj) -> None:
        charge = self._charge(intent, pm, error=None)
        intent["status"] = "succeeded"
        intent["amount_received"] = intent["amount"]
        intent["latest_charge"] = charge["id"]
        customer_id = intent["customer"]
        if intent["setup_future_usage"] and customer_id is not None:
            self.attach(pm, self.objects[customer_id])
        self.emit("charge.succeeded", charge)
        self.emit("payment_intent.succeeded", intent)
        self.on_intent_settled(intent, error=None)

    def _fail(self, intent: Obj, pm: Obj, error: StripeError) -> None:
        charge = self._charge(intent, pm, error=error)
        intent["status"] = "requires_payment_method"
        intent["latest_charge"] = charge["id"]
        intent["last_payment_error"] = {**_error_object(error, pm), "charge": charge["id"]}
        self.emit("charge.failed", charge)
        self.emit("payment_intent.payment_failed", intent)
        self.on_intent_settled(intent, error=error)
        error.extra.update(
            charge=charge["id"],
            payment_intent=self.render(intent, []),
            payment_method=self.render(pm, []),
        )
        raise error

    def on_intent_settled(self, intent: Obj, *, error: StripeError | None) -> None:
        """What else follows a payment's success or failure (billing settles its invoice)."""

    def _charge(self, intent: Obj, pm: Obj, *, error: StripeError | None) -> Obj:
        """The charge of one attempt: succeeded, or failed with ``error``'s reason."""
        if error is None:
            ok, outcome = True, {"network_status": "approved_by_network", "reason": None}
            outcome.update(seller_message="Payment complete.", type="authorized")
            failure_code = failure_message = None
        else:
            ok, outcome = False, {"network_status": "declined_by_network"}
            outcome.update(reason=error.decline_code, type="issuer_declined")
            outcome["seller_message"] = "The bank did not return any further details."
            failure_code, failure_message = error.code, error.message
        return self.base(
            "ch",
            "charge",
            amount=intent["amount"],
            amount_captured=intent["amount"] if ok else 0,
            amount_refunded=0,
            balance_transaction=self.new_id("txn") if ok else None,
            billing_details=pm["billing_details"],
            captured=ok,
            currency=intent["currency"],
            customer=intent["customer"],
            description=intent["description"],
            disputed=False,
            failure_code=failure_code,
            failure_message=failure_message,
            metadata=dict(intent["metadata"]),
            outcome={**outcome, "risk_level": "normal"},
            paid=ok,
            payment_intent=intent["id"],
            payment_method=pm["id"],
            payment_method_details={"type": "card", "card": dict(pm["card"])},
            receipt_email=intent["receipt_email"],
            receipt_number=None,
            receipt_url=f"https://pay.stripe.com/receipts/payment/{secrets.token_urlsafe(24)}",
            refunded=False,
            status="succeeded" if ok else "failed",
        )

    def cancel_payment_intent(self, params: dict[str, Any], intent_id: str) -> Obj:
        intent = self.get("payment_intent", intent_id, label="payment_intent")
        _expect_status(intent, "PaymentIntent", *_UNSETTLED)
        intent["status"] = "canceled"
        intent["canceled_at"] = self.clock()
        intent["cancellation_reason"] = str_param(params, "cancellation_reason")
        self.emit("payment_intent.canceled", intent)
        return intent

    def list_charges(self, params: dict[str, Any]) -> Obj:
        return self.filtered("charge", params, ("customer", "payment_intent"))

    # -- 3-D Secure ----------------------------------------------------------------------

    def authenticate(self, intent_id: str) -> Obj:
        """The customer passes 3-D Secure for an intent waiting on it: it goes on."""
        intent = self._waiting_intent(intent_id)
        self.authenticated.add(intent_id)
        if intent["object"] == "setup_intent":
            self._confirm_setup(intent)
        else:
            # A card that then declines leaves the intent showing it, as in Stripe.
            with contextlib.suppress(StripeError):
                self.confirm(intent, off_session=False)
        return intent

    def fail_authentication(self, intent_id: str) -> Obj:
        """The customer fails (or abandons) 3-D Secure: the intent needs a new card."""
        intent = self._waiting_intent(intent_id)
        pm = self.objects[intent["payment_method"]]
        intent["status"] = "requires_payment_method"
        intent["next_action"] = None
        kind = "setup_intent" if intent["object"] == "setup_intent" else "payment_intent"
        error = StripeError(
            402,
            "invalid_request_error",
            "We are unable to authenticate your payment method. Please choose a different "
            "payment method and try again.",
            code=f"{kind}_authentication_failure",
        )
        if kind == "setup_intent":
            intent["last_setup_error"] = _error_object(error, pm)
            self.emit("setup_intent.setup_failed", intent)
        else:
            intent["last_payment_error"] = _error_object(error, pm)
            self.emit("payment_intent.payment_failed", intent)
            self.on_intent_settled(intent, error=error)
        return intent

    def _waiting_intent(self, intent_id: str) -> Obj:
        intent = self.objects.get(intent_id)
        if intent is None or intent.get("status") != "requires_action":
            status = intent.get("status") if intent else "missing"
            raise ValueError(f"{intent_id} is not waiting for 3-D Secure (status {status})")
        return intent


def _expect_status(intent: Obj, label: str, *allowed: str) -> None:
    if intent["status"] not in allowed:
        kind = "setup_intent" if label == "SetupIntent" else "payment_intent"
        raise StripeError.invalid(
            f"This {label}'s status is {intent['status']}: only a {label} with one of the "
            f"statuses {', '.join(allowed)} can do this.",
            code=f"{kind}_unexpected_state",
        )


def _no_payment_method(label: str, code: str) -> StripeError:
    return StripeError.invalid(
        f"You cannot confirm this {label} because it's missing a payment method. Update the "
        f"{label} with a payment method and then confirm it again.",
        code=code,
    )


def _off_session(params: dict[str, Any]) -> bool:
    # Stripe takes "true", "one_off" or "recurring"; all three mean the customer is away.
    return str_param(params, "off_session") not in (None, "false")


def _three_d_secure() -> Obj:
    return {"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}}


def _error_object(error: StripeError, pm: Obj) -> Obj:
    return {
        "type": error.error_type,
        "code": error.code,
        "decline_code": error.decline_code,
        "message": error.message,
        "payment_method": {key: pm[key] for key in ("id", "object", "type", "card", "customer")},
    }
