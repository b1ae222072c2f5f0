"""Moving hot balances while an operation holds their customers, and moving them back."""

from __future__ import annotations

from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import Unavailable
from m3o.runtime.logging import get_logger
from m3o.services.balance.hot import debited_key, expected_hot, hot_key
from m3o.services.balance.ledger import Account

__all__ = ["HotMoves"]

_log = get_logger(__name__)

_LOAD_TRIES = 3


class HotMoves:
    """The hot-balance moves of one try of an operation, remembered so they can be undone."""

    def __init__(self, counters: CounterStore) -> None:
        self._counters = counters
        self._moved: list[tuple[str, int]] = []

    async def move(self, account: Account, delta: int) -> int:
        """Add ``delta`` to the customer's hot balance and return it.

        A hot balance that is not loaded is created from the ledger: ``account`` as read
        (before this operation's write) plus ``delta``, less the debits not recorded yet.
        """
        key = hot_key(account.customer_id)
        for _ in range(_LOAD_TRIES):
            value = await self._counters.incr_existing(key, delta)
            if value is not None:
                self._remember(account.customer_id, delta)
                return value
            debited = await self._counters.get(debited_key(account.customer_id))
            loaded = expected_hot(account.balance + delta, debited, account.recorded)
            if await self._counters.set_counter_if_absent(key, loaded):
                self._remember(account.customer_id, delta)
                return loaded
        # Created and removed again between our tries, three times over.
        raise Unavailable("balance", "Balance busy, please try again")

    def _remember(self, customer_id: str, delta: int) -> None:
        if delta:
            self._moved.append((customer_id, delta))

    async def undo(self) -> None:
        """Move back every move made, latest first."""
        while self._moved:
            customer_id, delta = self._moved.pop()
            if await self._counters.incr_existing(hot_key(customer_id), -delta) is None:
                # Removed meantime (the customer deleted): it reloads from the ledger.
                _log.warning("balance.undo_found_no_hot_balance", customer_id=customer_id)
