"""Taking a customer out of billing: on customers/Deleted and on DeleteCustomer.

The customer leaves every account it belongs to; an account left without an admin has its
Stripe subscription cancelled (one already gone counts as done), then is deleted. The
cancel comes first, outside the transaction, so a failure leaves everything as it was and
the caller (the bus, or admin) asks again. Removing a customer twice does nothing more.
"""

from __future__ import annotations

from m3o.runtime.auth import CallContext
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.billing import records
from m3o.services.billing.subscriptions import Subscriptions

__all__ = ["Erasure"]

_log = get_logger(__name__)


class Erasure:
    """Removes one customer from billing."""

    def __init__(self, *, sessions: SessionFactory, subscriptions: Subscriptions) -> None:
        self._sessions = sessions
        self._subscriptions = subscriptions

    async def remove(self, ctx: CallContext, customer_id: str) -> None:
        async with self._sessions() as session:
            account_ids = await records.accounts_of(session, customer_id)
        for account_id in account_ids:
            async with self._sessions() as session:
                account = await records.find(session, account_id)
            if account is None:
                continue
            last_admin = set(account.admins) <= {customer_id}
            if last_admin and account.subscription_id:
                await self._subscriptions.cancel(ctx, account_id, account.subscription_id)
            async with transaction(self._sessions) as session:
                if last_admin:
                    await records.delete_account(session, account_id)
                else:
                    await records.remove_member(session, account_id, customer_id)
            _log.info(
                "billing.customer_removed",
                customer_id=customer_id,
                account_id=account_id,
                account_deleted=last_admin,
            )
