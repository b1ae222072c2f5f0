"""The billing service: accounts, tiers and subscription changes (``Billing``).

Who may do what:

- a customer reads their own billing account (made on first need: its id is theirs) and
  changes its tier; the card calls are passed to stripe in the customer's own name (see
  :class:`~m3o.services.billing.payments.Payments`);
- an admin reads any account, by id or by an admin's id; a service reads any too;
- only a service reports a subscription that ended at Stripe (stripe's own ends arrive as
  stripe/SubscriptionDeleted, see ``consumers.py``);
- anyone lists the tiers.

Roles are checked before anything is read or written, so a refused caller learns nothing
about the accounts that exist.
"""

from __future__ import annotations

from collections.abc import Mapping

from m3o.runtime.auth import (
    CallContext,
    is_customer,
    verify_admin,
    verify_customer,
    verify_service,
)
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.config.sections import Tier
from m3o.runtime.errors import BadRequest, Forbidden, NotFound
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.billing import records
from m3o.services.billing.erasure import Erasure
from m3o.services.billing.payments import Payments
from m3o.services.billing.proto import billing_pb2 as pb
from m3o.services.billing.subscriptions import Subscriptions
from m3o.services.stripe.proto.client import StripeService

__all__ = ["INVALID_TIER", "MISSING_ID", "NOT_FOUND", "Billing"]

_log = get_logger(__name__)

INVALID_TIER = "Subscription ID not valid"
MISSING_ID = "Missing id or admin_id param"
NOT_FOUND = "Not found"


class Billing(Payments):
    """Implements ``billing.Billing`` (see ``proto/billing.proto``); the card calls come
    from :class:`Payments`."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        stripe: StripeService,
        subscriptions: Subscriptions,
        tiers: Mapping[str, Tier],
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(stripe=stripe)
        self._sessions = sessions
        self._subscriptions = subscriptions
        self._tiers = dict(tiers)
        self._clock = clock
        self._erasure = Erasure(sessions=sessions, subscriptions=subscriptions)

    async def delete_customer(
        self, request: pb.DeleteCustomerRequest, ctx: CallContext
    ) -> pb.DeleteCustomerResponse:
        verify_service(ctx)
        customer_id = request.customer_id.strip()
        if not customer_id:
            raise BadRequest(ctx.endpoint, "Missing customer ID")
        await self._erasure.remove(ctx, customer_id)
        return pb.DeleteCustomerResponse()

    async def read_account(
        self, request: pb.ReadAccountRequest, ctx: CallContext
    ) -> pb.ReadAccountResponse:
        account = ctx.account
        if account is not None and is_customer(account):
            async with transaction(self._sessions) as session:
                await records.ensure(session, account.id, self._clock())
                found = await records.find(session, account.id)
        else:
            verify_admin(ctx)
            if not request.id and not request.admin_id:
                raise BadRequest(ctx.endpoint, MISSING_ID)
            async with self._sessions() as session:
                if request.id:
                    found = await records.find(session, request.id)
                else:
                    found = await records.find_by_admin(session, request.admin_id)
        if found is None:
            raise NotFound(ctx.endpoint, NOT_FOUND)
        return pb.ReadAccountResponse(billing_account=found.to_pb())

    async def list_tiers(
        self, request: pb.ListTiersRequest, ctx: CallContext
    ) -> pb.ListTiersResponse:
        ordered = sorted(self._tiers.items(), key=lambda item: item[0] != records.FREE_TIER)
        return pb.ListTiersResponse(
            tiers=[
                pb.Tier(id=tier_id, name=t.name, price=t.price, description=t.description)
                for tier_id, t in ordered
            ]
        )

    async def subscribe_tier(
        self, request: pb.SubscribeTierRequest, ctx: CallContext
    ) -> pb.SubscribeTierResponse:
        account = verify_customer(ctx)
        if not is_customer(account):
            raise Forbidden(ctx.endpoint, "Forbidden")
        tier = self._tiers.get(request.id)
        if tier is None:
            raise BadRequest(ctx.endpoint, INVALID_TIER)
        if tier.stripe_price_id and not request.card_id:
            raise BadRequest(ctx.endpoint, "Missing card_id")
        await self._subscriptions.change(ctx, account.id, request.id, request.card_id)
        return pb.SubscribeTierResponse()

    async def subscription_ended(
        self, request: pb.SubscriptionEndedRequest, ctx: CallContext
    ) -> pb.SubscriptionEndedResponse:
        account = verify_service(ctx)
        if not request.customer_id:
            raise BadRequest(ctx.endpoint, "Missing customer_id")
        if not request.subscription_id:
            raise BadRequest(ctx.endpoint, "Missing subscription_id")
        await self._subscriptions.ended(request.customer_id, request.subscription_id, account.id)
        return pb.SubscriptionEndedResponse()
