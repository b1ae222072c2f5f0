"""Changing a billing account's tier, make before break.

A change goes in four steps:

1. Under the account's lock: the change is recorded as under way (its tier, an id and its
   start). A second change to another tier is refused while one is under way (for
   ``STALE_AFTER``, past which a change that never finished is abandoned); a repeat of the
   same change keeps its id, so Stripe sees the same idempotency key
   ``billing-subscribe:<account>:<tier>:<change id>`` and returns the same subscription.
2. A paid tier: stripe ``Subscribe``; the subscription must come back ``active``, else it
   is cancelled and the change fails.
3. The old subscription, if any, is cancelled (``Unsubscribe``; NotFound counts as done).
   If that fails the new one is cancelled and the change fails: the old tier and
   subscription stay.
4. Under the lock again: the tier and subscription are written and customers/
   SubscriptionChanged published in the same transaction.

A failed change forgets itself, so the next attempt starts afresh. Stripe's refusals
(the card is not the customer's, the card was declined) reach the caller with Stripe's
reason under billing's endpoint id; other failures are logged and answered Internal.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from m3o.events.customers import TOPIC
from m3o.runtime.auth import CallContext
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.config.sections import Tier
from m3o.runtime.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    M3OError,
    NotFound,
    Unavailable,
)
from m3o.runtime.events import Publisher
from m3o.runtime.logging import get_logger
from m3o.runtime.rpc.calls import Calls
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.billing import records
from m3o.services.billing.events import subscription_changed
from m3o.services.stripe.proto import stripe_pb2 as stripe_pb
from m3o.services.stripe.proto.client import StripeService

__all__ = ["ACTIVE", "IN_PROGRESS", "STALE_AFTER", "Subscriptions"]

_log = get_logger(__name__)
_calls = Calls("billing.stripe_call_failed")

ACTIVE = "active"
STALE_AFTER = timedelta(minutes=10)
"""How long a change may stay under way before another may replace it (far longer than
the calls to Stripe may take)."""
IN_PROGRESS = "A subscription change is already in progress"

_STRIPE_REFUSALS = (BadRequest, Forbidden, NotFound, Unavailable)
"""Stripe's answers that say why a change failed; they reach the caller as they are."""


@dataclass(frozen=True, slots=True)
class _Change:
    account_id: str
    tier: str
    change: str
    old_subscription: str


class Subscriptions:
    """Moves billing accounts between tiers through stripe's Subscribe and Unsubscribe."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        publisher: Publisher,
        stripe: StripeService,
        tiers: Mapping[str, Tier],
        clock: Clock = utc_now,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._stripe = stripe
        self._tiers = dict(tiers)
        self._clock = clock
        self._new_id = new_id

    async def change(self, ctx: CallContext, account_id: str, tier: str, card_id: str) -> None:
        """Move the account (made if missing) to ``tier``, which is configured."""
        caller_id = ctx.account.id if ctx.account else ""
        change = await self._begin(ctx, account_id, tier)
        if change is None:
            return
        new_subscription = ""
        try:
            price_id = self._tiers[tier].stripe_price_id
            if price_id:
                new_subscription = await self._subscribe(ctx, change, price_id, card_id)
            if change.old_subscription:
                await self.cancel(ctx, account_id, change.old_subscription)
        except M3OError:
            if new_subscription:
                await self._undo(ctx, account_id, new_subscription)
            async with transaction(self._sessions) as session:
                await records.clear_pending(session, account_id, change.change)
            raise
        await self._finish(ctx, change, new_subscription, caller_id)

    async def ended(self, account_id: str, subscription_id: str, caller_id: str) -> bool:
        """The subscription ended at Stripe: its account, if it still pays by it, goes free."""
        async with transaction(self._sessions) as session:
            account = await records.lock(session, account_id)
            if account is None or account.subscription_id != subscription_id:
                return False
            await records.set_subscription(session, account_id, records.FREE_TIER, "")
            event = subscription_changed(account_id, records.FREE_TIER, caller_id)
            await self._publisher.publish(TOPIC, event, session=session)
        _log.info("billing.subscription_ended", account_id=account_id, tier=account.tier)
        return True

    async def cancel(self, ctx: CallContext, account_id: str, subscription_id: str) -> None:
        """Cancel a subscription of the account's customer; one already gone counts as done."""
        request = stripe_pb.UnsubscribeRequest(
            subscription_id=subscription_id, customer_id=account_id
        )
        try:
            await self._stripe.unsubscribe(request)
        except NotFound:
            _log.info(
                "billing.subscription_already_gone",
                account_id=account_id,
                subscription_id=subscription_id,
            )
        except _STRIPE_REFUSALS as exc:
            raise type(exc)(ctx.endpoint, exc.detail) from None
        except M3OError as exc:
            raise _calls.failure(ctx, "stripe.unsubscribe", exc, account_id=account_id) from None

    async def _begin(self, ctx: CallContext, account_id: str, tier: str) -> _Change | None:
        now = self._clock()
        async with transaction(self._sessions) as session:
            await records.ensure(session, account_id, now)
            account = await records.lock(session, account_id)
            assert account is not None  # just ensured, and locked
            if account.tier == tier:
                return None
            under_way = account.pending_change and (
                account.pending_since is None or now - account.pending_since < STALE_AFTER
            )
            if under_way and account.pending_tier != tier:
                raise Conflict(ctx.endpoint, IN_PROGRESS)
            change = account.pending_change if under_way else self._new_id()
            await records.set_pending(session, account_id, tier, change, now)
        return _Change(account_id, tier, change, account.subscription_id)

    async def _subscribe(
        self, ctx: CallContext, change: _Change, price_id: str, card_id: str
    ) -> str:
        request = stripe_pb.SubscribeRequest(
            price_id=price_id,
            card_id=card_id,
            customer_id=change.account_id,
            idempotency_key=f"billing-subscribe:{change.account_id}:{change.tier}:{change.change}",
        )
        try:
            subscribed = await self._stripe.subscribe(request)
        except _STRIPE_REFUSALS as exc:
            raise type(exc)(ctx.endpoint, exc.detail) from None
        except M3OError as exc:
            raise _calls.failure(
                ctx, "stripe.subscribe", exc, account_id=change.account_id
            ) from None
        if subscribed.status != ACTIVE:
            await self._undo(ctx, change.account_id, subscribed.subscription_id)
            status = subscribed.status or "unknown"
            raise BadRequest(
                ctx.endpoint, f"The subscription could not be paid (its status is {status})"
            )
        return subscribed.subscription_id

    async def _undo(self, ctx: CallContext, account_id: str, subscription_id: str) -> None:
        """Cancel a subscription made for a change that failed; a failure here is logged
        for an operator (the customer would pay for it) and the change's own error stands."""
        if not subscription_id:
            return
        try:
            await self.cancel(ctx, account_id, subscription_id)
        except M3OError as exc:
            _log.error(
                "billing.orphan_subscription",
                account_id=account_id,
                subscription_id=subscription_id,
                kind=type(exc).__name__,
                detail=exc.detail,
            )

    async def _finish(
        self, ctx: CallContext, change: _Change, subscription_id: str, caller_id: str
    ) -> None:
        async with transaction(self._sessions) as session:
            account = await records.lock(session, change.account_id)
            current = account is not None and account.pending_change == change.change
            if current:
                await records.set_subscription(
                    session, change.account_id, change.tier, subscription_id
                )
                event = subscription_changed(change.account_id, change.tier, caller_id)
                await self._publisher.publish(TOPIC, event, session=session)
        if current:
            _log.info(
                "billing.tier_changed",
                account_id=change.account_id,
                tier=change.tier,
                subscription_id=subscription_id,
            )
            return
        if account is not None and account.subscription_id == subscription_id:
            return  # the same change, repeated concurrently, finished first
        await self._undo(ctx, change.account_id, subscription_id)
        raise Conflict(ctx.endpoint, IN_PROGRESS)
