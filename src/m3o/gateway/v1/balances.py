"""Loading a customer's hot balance when admission finds none (``balance.Current`` loads
it into the counter store as a side effect of reading it)."""

from __future__ import annotations

from m3o.services.balance.proto import balance_pb2 as balance_pb
from m3o.services.balance.proto.client import BalanceService

__all__ = ["BalanceCurrent"]


class BalanceCurrent:
    """:class:`~m3o.gateway.v1.ports.BalanceLoader` through the balance service (called
    with the gateway's service account)."""

    def __init__(self, balance: BalanceService, *, timeout: float | None = 5.0) -> None:
        self._balance = balance
        self._timeout = timeout

    async def load(self, customer_id: str) -> None:
        await self._balance.current(
            balance_pb.CurrentRequest(customer_id=customer_id), timeout=self._timeout
        )
