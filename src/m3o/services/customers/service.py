"""Wiring of the customers service."""

from __future__ import annotations

from m3o.runtime.service import Dependencies, Handler, ServiceDefinition, ServiceParts
from m3o.services.auth.proto.client import AuthClient
from m3o.services.customers import tables
from m3o.services.customers.handler import Customers
from m3o.services.customers.proto.client import SPEC

__all__ = ["definition"]


async def _build(deps: Dependencies) -> ServiceParts:
    handler = Customers(
        sessions=deps.sessions,
        publisher=deps.publisher,
        auth=deps.clients.get(AuthClient),
        token_ttl=deps.config.auth.customer_token_ttl,
    )
    return ServiceParts(handlers=[Handler(SPEC, handler)])


definition = ServiceDefinition(
    name="customers",
    build=_build,
    specs=(SPEC,),
    metadata=tables.metadata,
)
