"""Wiring of the balance service."""

from __future__ import annotations

from m3o.runtime.service import Cron, Dependencies, Handler, ServiceDefinition, ServiceParts
from m3o.services.balance import tables
from m3o.services.balance.balances import Balances
from m3o.services.balance.consumers import CustomerDeletions, PaymentCredits
from m3o.services.balance.handler import Balance
from m3o.services.balance.proto.client import SPEC
from m3o.services.balance.settings import settings_from
from m3o.services.customers.proto.client import CustomersClient

__all__ = ["definition"]


async def _build(deps: Dependencies) -> ServiceParts:
    settings = settings_from(deps.config)
    balances = Balances(sessions=deps.sessions, counters=deps.counters, publisher=deps.publisher)
    handler = Balance(
        sessions=deps.sessions,
        balances=balances,
        customers=deps.clients.get(CustomersClient),
    )

    async def flush() -> None:
        await balances.flusher.flush()

    return ServiceParts(
        handlers=[Handler(SPEC, handler)],
        consumers=[
            PaymentCredits(balances=balances, settings=settings).consumer(),
            CustomerDeletions(balances=balances).consumer(),
        ],
        crons=[Cron("flush-debits", settings.flush_interval, flush, at_start=True)],
    )


definition = ServiceDefinition(
    name="balance",
    build=_build,
    specs=(SPEC,),
    metadata=tables.metadata,
)
