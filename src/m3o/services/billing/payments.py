"""The card calls of billing, passed to stripe in the caller's own name.

Each call forwards the caller's ``authorization``, so stripe serves the caller's cards and
payments and applies its own checks (a card that is not theirs: Forbidden). Billing's
messages have the same fields, numbers and types as stripe's, so an answer is stripe's
encoded and decoded as billing's. Stripe's refusals reach the caller with stripe's reason
under billing's endpoint id; other failures are logged and answered Internal.

Only customers have cards and payments; an admin may also read any payment.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import TypeVar

from google.protobuf.message import Message

from m3o.runtime.auth import CallContext, is_customer, verify_customer
from m3o.runtime.errors import (
    BadRequest,
    Forbidden,
    M3OError,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)
from m3o.runtime.rpc.calls import Calls
from m3o.services.billing.proto import billing_pb2 as pb
from m3o.services.stripe.proto import stripe_pb2 as stripe_pb
from m3o.services.stripe.proto.client import StripeService

__all__ = ["Payments"]

_calls = Calls("billing.stripe_call_failed")
_REFUSALS = (BadRequest, Unauthorized, Forbidden, NotFound, TooManyRequests, Unavailable)

M = TypeVar("M", bound=Message)


def _as(message: Message, target: type[M]) -> M:
    return target.FromString(message.SerializeToString())


def _caller(ctx: CallContext, *, admin_too: bool = False) -> Mapping[str, str]:
    """The metadata to call stripe with: the caller's own token."""
    account = verify_customer(ctx)
    if not admin_too and not is_customer(account):
        raise Forbidden(ctx.endpoint, "Forbidden")
    authorization = ctx.metadata.get("authorization", "")
    if not authorization:
        raise Unauthorized(ctx.endpoint, "Unauthorized")
    return {"authorization": authorization}


async def _ask(ctx: CallContext, name: str, pending: Awaitable[Message], target: type[M]) -> M:
    try:
        answer = await pending
    except _REFUSALS as exc:
        raise type(exc)(ctx.endpoint, exc.detail) from None
    except M3OError as exc:
        raise _calls.failure(ctx, name, exc) from None
    return _as(answer, target)


class Payments:
    """The card RPCs of ``billing.Billing``."""

    def __init__(self, *, stripe: StripeService) -> None:
        self.stripe = stripe

    async def create_checkout_session(
        self, request: pb.CreateCheckoutSessionRequest, ctx: CallContext
    ) -> pb.CreateCheckoutSessionResponse:
        metadata = _caller(ctx)
        asked = _as(request, stripe_pb.CreateCheckoutSessionRequest)
        pending = self.stripe.create_checkout_session(asked, metadata=metadata)
        return await _ask(
            ctx, "stripe.create_checkout_session", pending, pb.CreateCheckoutSessionResponse
        )

    async def setup_card(
        self, request: pb.SetupCardRequest, ctx: CallContext
    ) -> pb.SetupCardResponse:
        metadata = _caller(ctx)
        pending = self.stripe.setup_card(stripe_pb.SetupCardRequest(), metadata=metadata)
        return await _ask(ctx, "stripe.setup_card", pending, pb.SetupCardResponse)

    async def list_cards(
        self, request: pb.ListCardsRequest, ctx: CallContext
    ) -> pb.ListCardsResponse:
        metadata = _caller(ctx)
        pending = self.stripe.list_cards(stripe_pb.ListCardsRequest(), metadata=metadata)
        return await _ask(ctx, "stripe.list_cards", pending, pb.ListCardsResponse)

    async def charge_card(
        self, request: pb.ChargeCardRequest, ctx: CallContext
    ) -> pb.ChargeCardResponse:
        metadata = _caller(ctx)
        if not request.id:
            raise BadRequest(ctx.endpoint, "Missing card id")
        asked = _as(request, stripe_pb.ChargeCardRequest)
        pending = self.stripe.charge_card(asked, metadata=metadata)
        return await _ask(ctx, "stripe.charge_card", pending, pb.ChargeCardResponse)

    async def delete_card(
        self, request: pb.DeleteCardRequest, ctx: CallContext
    ) -> pb.DeleteCardResponse:
        metadata = _caller(ctx)
        if not request.id:
            raise BadRequest(ctx.endpoint, "Missing card id")
        pending = self.stripe.delete_card(
            stripe_pb.DeleteCardRequest(id=request.id), metadata=metadata
        )
        return await _ask(ctx, "stripe.delete_card", pending, pb.DeleteCardResponse)

    async def list_payments(
        self, request: pb.ListPaymentsRequest, ctx: CallContext
    ) -> pb.ListPaymentsResponse:
        metadata = _caller(ctx)
        pending = self.stripe.list_payments(stripe_pb.ListPaymentsRequest(), metadata=metadata)
        return await _ask(ctx, "stripe.list_payments", pending, pb.ListPaymentsResponse)

    async def get_payment(
        self, request: pb.GetPaymentRequest, ctx: CallContext
    ) -> pb.GetPaymentResponse:
        metadata = _caller(ctx, admin_too=True)
        if not request.id:
            raise BadRequest(ctx.endpoint, "Missing payment id")
        pending = self.stripe.get_payment(
            stripe_pb.GetPaymentRequest(id=request.id), metadata=metadata
        )
        return await _ask(ctx, "stripe.get_payment", pending, pb.GetPaymentResponse)
