"""Wiring of the signup service."""

from __future__ import annotations

from datetime import timedelta

from m3o.runtime.service import Cron, Dependencies, Handler, ServiceDefinition, ServiceParts
from m3o.services.auth.proto.client import AuthClient
from m3o.services.balance.proto.client import BalanceClient
from m3o.services.customers.proto.client import CustomersClient
from m3o.services.emails.proto.client import EmailsClient
from m3o.services.signup import tables
from m3o.services.signup.consumers import Onboarding
from m3o.services.signup.handler import Signup
from m3o.services.signup.proto.client import SPEC
from m3o.services.signup.settings import settings_from

__all__ = ["definition"]


async def _build(deps: Dependencies) -> ServiceParts:
    settings = settings_from(deps.config)
    emails = deps.clients.get(EmailsClient)
    handler = Signup(
        sessions=deps.sessions,
        publisher=deps.publisher,
        counters=deps.counters,
        customers=deps.clients.get(CustomersClient),
        auth=deps.clients.get(AuthClient),
        emails=emails,
        settings=settings,
    )
    onboarding = Onboarding(
        sessions=deps.sessions,
        balance=deps.clients.get(BalanceClient),
        emails=emails,
        settings=settings,
    )
    return ServiceParts(
        handlers=[Handler(SPEC, handler)],
        consumers=[onboarding.consumer()],
        crons=[Cron("purge-expired", timedelta(days=1), handler.purge_expired)],
    )


definition = ServiceDefinition(
    name="signup",
    build=_build,
    specs=(SPEC,),
    metadata=tables.metadata,
)
