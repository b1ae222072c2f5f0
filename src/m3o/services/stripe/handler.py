"""The stripe service's RPCs: roles and validation first, then Stripe.

Roles: the card and checkout calls are the caller's own (customers, and admins for
themselves); payments may be read by their owner, admins and services; subscriptions are
made and cancelled only by service accounts (billing), for a customer whose card and
subscription must be theirs; the webhook comes only from a service account (the HTTP front
forwards it, with the ``gateway`` account). Every Stripe write carries an idempotency key.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from m3o.runtime.auth import (
    CallContext,
    verify_admin,
    verify_customer,
    verify_self_or_admin,
    verify_service,
)
from m3o.runtime.errors import BadRequest, Forbidden, NotFound, Unauthorized
from m3o.services.stripe.connection import StripeConnection
from m3o.services.stripe.customer_map import CUSTOMER_METADATA, CustomerMap
from m3o.services.stripe.proto import stripe_pb2 as pb
from m3o.services.stripe.settings import StripeSettings
from m3o.services.stripe.webhook import Webhooks

if TYPE_CHECKING:
    from stripe import Charge, PaymentMethod
    from stripe.params.checkout import SessionCreateParams

__all__ = ["CREDIT_LINE_ITEM", "MAX_KEY_LENGTH", "WEBHOOK_CALLER", "Stripe", "object_id"]

CREDIT_LINE_ITEM = "M3O credit"
"""Name of the Checkout line item of a top-up."""
MAX_KEY_LENGTH = 200
"""Longest idempotency key a client may send (Stripe takes 255, ours get a prefix)."""
_NOT_YOUR_CARD = "Card does not belong to user"
WEBHOOK_CALLER = "gateway"
"""The service account that forwards Stripe's webhooks: the HTTP front's."""
_LIST_LIMIT = 100
_CARDS_ONLY: Any = {"enabled": True, "allow_redirects": "never"}
"""Payments confirmed here, without a page to return to: cards (no redirecting methods)."""


def object_id(value: object) -> str:
    """The id of an expandable field: the id itself, or the expanded object's."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return str(getattr(value, "id", ""))


def _payment(charge: Charge) -> pb.Payment:
    return pb.Payment(
        id=charge.id,
        amount=charge.amount,
        currency=charge.currency,
        date=charge.created,
        receipt_url=charge.receipt_url or "",
        description=charge.description or "",
        status=charge.status,
    )


class Stripe:
    """Implements ``stripe.Stripe`` (see ``proto/stripe.proto``)."""

    def __init__(
        self,
        *,
        settings: StripeSettings,
        stripe: StripeConnection,
        customers: CustomerMap,
        webhooks: Webhooks,
    ) -> None:
        self._settings = settings
        self._stripe = stripe
        self._customers = customers
        self._webhooks = webhooks

    def _check_amount(self, ctx: CallContext, amount: int) -> None:
        if amount < self._settings.min_amount:
            raise BadRequest(ctx.endpoint, f"Amount must be at least {self._settings.min_amount}")

    async def create_checkout_session(
        self, request: pb.CreateCheckoutSessionRequest, ctx: CallContext
    ) -> pb.CreateCheckoutSessionResponse:
        account = verify_customer(ctx)
        if not request.save_card:
            self._check_amount(ctx, request.amount)
        customer = await self._customers.ensure(ctx.endpoint, account.id)
        params: SessionCreateParams = {
            "customer": customer,
            "success_url": self._settings.success_url,
            "cancel_url": self._settings.cancel_url,
            "metadata": {CUSTOMER_METADATA: account.id},
        }
        if request.save_card:
            params["mode"] = "setup"
            params["currency"] = self._settings.currency
        else:
            params["mode"] = "payment"
            params["line_items"] = [
                {
                    "price_data": {
                        "currency": self._settings.currency,
                        "product_data": {"name": CREDIT_LINE_ITEM},
                        "unit_amount": request.amount,
                    },
                    "quantity": 1,
                }
            ]
        session = await self._stripe.call(
            ctx.endpoint,
            lambda client: client.v1.checkout.sessions.create_async(
                params, {"idempotency_key": f"checkout:{uuid.uuid4()}"}
            ),
        )
        return pb.CreateCheckoutSessionResponse(id=session.id, url=session.url or "")

    async def setup_card(
        self, request: pb.SetupCardRequest, ctx: CallContext
    ) -> pb.SetupCardResponse:
        account = verify_customer(ctx)
        customer = await self._customers.ensure(ctx.endpoint, account.id)
        intent = await self._stripe.call(
            ctx.endpoint,
            lambda client: client.v1.setup_intents.create_async(
                {
                    "customer": customer,
                    "automatic_payment_methods": _CARDS_ONLY,
                    "usage": "off_session",
                },
                {"idempotency_key": f"setup:{uuid.uuid4()}"},
            ),
        )
        return pb.SetupCardResponse(client_secret=intent.client_secret or "")

    async def list_cards(
        self, request: pb.ListCardsRequest, ctx: CallContext
    ) -> pb.ListCardsResponse:
        account = verify_customer(ctx)
        customer = await self._customers.find(account.id)
        if customer is None:
            return pb.ListCardsResponse()
        methods = await self._stripe.call(
            ctx.endpoint,
            lambda client: client.v1.payment_methods.list_async(
                {"customer": customer, "type": "card", "limit": _LIST_LIMIT}
            ),
        )
        cards = [
            pb.Card(
                id=method.id,
                last_four=method.card.last4,
                expires=f"{method.card.exp_month:02d}/{method.card.exp_year}",
            )
            for method in methods.data
            if method.card is not None
        ]
        return pb.ListCardsResponse(cards=cards)

    async def _own_card(self, ctx: CallContext, customer_id: str, card_id: str) -> PaymentMethod:
        """The card ``card_id`` if it belongs to ``customer_id``, else Forbidden."""
        customer = await self._customers.find(customer_id)
        if customer is None:
            raise Forbidden(ctx.endpoint, _NOT_YOUR_CARD)
        method = await self._stripe.call(
            ctx.endpoint,
            lambda client: client.v1.payment_methods.retrieve_async(card_id),
            missing="Card not found",
        )
        if object_id(method.customer) != customer:
            raise Forbidden(ctx.endpoint, _NOT_YOUR_CARD)
        return method

    def _key(self, ctx: CallContext, kind: str, owner: str, given: str) -> str:
        if len(given) > MAX_KEY_LENGTH:
            raise BadRequest(
                ctx.endpoint, f"Idempotency key is longer than {MAX_KEY_LENGTH} characters"
            )
        # A client's key is scoped to its owner, so two customers' keys never meet.
        return f"{kind}:{owner}:{given or uuid.uuid4()}"

    async def charge_card(
        self, request: pb.ChargeCardRequest, ctx: CallContext
    ) -> pb.ChargeCardResponse:
        account = verify_customer(ctx)
        if not request.id:
            raise BadRequest(ctx.endpoint, "Missing card ID")
        self._check_amount(ctx, request.amount)
        key = self._key(ctx, "charge", account.id, request.idempotency_key)
        method = await self._own_card(ctx, account.id, request.id)
        customer = object_id(method.customer)
        intent = await self._stripe.call(
            ctx.endpoint,
            lambda client: client.v1.payment_intents.create_async(
                {
                    "amount": request.amount,
                    "currency": self._settings.currency,
                    "customer": customer,
                    "payment_method": method.id,
                    "automatic_payment_methods": _CARDS_ONLY,
                    "confirm": True,
                    "metadata": {CUSTOMER_METADATA: account.id},
                },
                {"idempotency_key": key},
            ),
        )
        return pb.ChargeCardResponse(
            client_secret=intent.client_secret or "", status=intent.status, payment_id=intent.id
        )

    async def delete_card(
        self, request: pb.DeleteCardRequest, ctx: CallContext
    ) -> pb.DeleteCardResponse:
        account = verify_customer(ctx)
        if not request.id:
            raise BadRequest(ctx.endpoint, "Missing card ID")
        await self._own_card(ctx, account.id, request.id)
        await self._stripe.call(
            ctx.endpoint,
            lambda client: client.v1.payment_methods.detach_async(
                request.id, options={"idempotency_key": f"detach:{request.id}"}
            ),
            missing="Card not found",
        )
        return pb.DeleteCardResponse()

    async def list_payments(
        self, request: pb.ListPaymentsRequest, ctx: CallContext
    ) -> pb.ListPaymentsResponse:
        if ctx.account is None:
            raise Unauthorized(ctx.endpoint, "Unauthorized")
        customer_id = request.customer_id or ctx.account.id
        verify_self_or_admin(ctx, customer_id)
        customer = await self._customers.find(customer_id)
        if customer is None:
            return pb.ListPaymentsResponse()
        charges = await self._stripe.call(
            ctx.endpoint,
            lambda client: client.v1.charges.list_async(
                {"customer": customer, "limit": _LIST_LIMIT}
            ),
        )
        payments = sorted(charges.data, key=lambda charge: charge.created, reverse=True)
        return pb.ListPaymentsResponse(payments=[_payment(charge) for charge in payments])

    async def get_payment(
        self, request: pb.GetPaymentRequest, ctx: CallContext
    ) -> pb.GetPaymentResponse:
        if ctx.account is None:
            raise Unauthorized(ctx.endpoint, "Unauthorized")
        if not request.id:
            raise BadRequest(ctx.endpoint, "Missing payment ID")
        charge = await self._stripe.call(
            ctx.endpoint,
            lambda client: client.v1.charges.retrieve_async(request.id),
            missing="Payment not found",
        )
        owner = await self._customers.owner(object_id(charge.customer))
        # Someone else's payment is answered as one that does not exist.
        try:
            verify_self_or_admin(ctx, owner or "")
        except Forbidden:
            raise NotFound(ctx.endpoint, "Payment not found") from None
        return pb.GetPaymentResponse(payment=_payment(charge))

    async def subscribe(
        self, request: pb.SubscribeRequest, ctx: CallContext
    ) -> pb.SubscribeResponse:
        verify_service(ctx)
        for value, name in (
            (request.customer_id, "customer ID"),
            (request.price_id, "price ID"),
            (request.card_id, "card ID"),
            (request.idempotency_key, "idempotency key"),
        ):
            if not value:
                raise BadRequest(ctx.endpoint, f"Missing {name}")
        key = self._key(ctx, "subscribe", request.customer_id, request.idempotency_key)
        method = await self._own_card(ctx, request.customer_id, request.card_id)
        customer = object_id(method.customer)
        subscription = await self._stripe.call(
            ctx.endpoint,
            lambda client: client.v1.subscriptions.create_async(
                {
                    "customer": customer,
                    "items": [{"price": request.price_id}],
                    "default_payment_method": method.id,
                    "payment_behavior": "error_if_incomplete",
                    "metadata": {CUSTOMER_METADATA: request.customer_id},
                },
                {"idempotency_key": key},
            ),
        )
        return pb.SubscribeResponse(subscription_id=subscription.id, status=subscription.status)

    async def unsubscribe(
        self, request: pb.UnsubscribeRequest, ctx: CallContext
    ) -> pb.UnsubscribeResponse:
        verify_service(ctx)
        if not request.subscription_id:
            raise BadRequest(ctx.endpoint, "Missing subscription ID")
        if not request.customer_id:
            raise BadRequest(ctx.endpoint, "Missing customer ID")
        customer = await self._customers.find(request.customer_id)
        subscription = await self._stripe.call(
            ctx.endpoint,
            lambda client: client.v1.subscriptions.retrieve_async(request.subscription_id),
            missing="Subscription not found",
        )
        if customer is None or object_id(subscription.customer) != customer:
            raise Forbidden(ctx.endpoint, "Subscription does not belong to user")
        if subscription.status == "canceled":
            return pb.UnsubscribeResponse()
        await self._stripe.call(
            ctx.endpoint,
            lambda client: client.v1.subscriptions.cancel_async(
                request.subscription_id,
                options={"idempotency_key": f"unsubscribe:{request.subscription_id}"},
            ),
            missing="Subscription not found",
        )
        return pb.UnsubscribeResponse()

    async def delete_customer(
        self, request: pb.DeleteCustomerRequest, ctx: CallContext
    ) -> pb.DeleteCustomerResponse:
        verify_admin(ctx)
        if not request.customer_id:
            raise BadRequest(ctx.endpoint, "Missing customer ID")
        await self._customers.delete(ctx.endpoint, request.customer_id)
        return pb.DeleteCustomerResponse()

    async def webhook(self, request: pb.WebhookRequest, ctx: CallContext) -> pb.WebhookResponse:
        account = verify_service(ctx)
        if account.id != WEBHOOK_CALLER:
            raise Forbidden(ctx.endpoint, "Forbidden")
        await self._webhooks.receive(ctx.endpoint, request.payload, request.signature)
        return pb.WebhookResponse()
