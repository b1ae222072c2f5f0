"""Wiring of the projects service."""

from __future__ import annotations

from m3o.runtime.service import Dependencies, Handler, ServiceDefinition, ServiceParts
from m3o.services.customers.proto.client import CustomersClient
from m3o.services.projects import tables
from m3o.services.projects.consumers import CustomerEvents
from m3o.services.projects.erasure import Erasure
from m3o.services.projects.handler import Projects
from m3o.services.projects.proto.client import SPEC

__all__ = ["definition"]


async def _build(deps: Dependencies) -> ServiceParts:
    handler = Projects(
        sessions=deps.sessions,
        publisher=deps.publisher,
        customers=deps.clients.get(CustomersClient),
        project_limits=deps.config.billing.project_limits,
    )
    customer_events = CustomerEvents(
        sessions=deps.sessions,
        erasure=Erasure(sessions=deps.sessions, publisher=deps.publisher),
    )
    return ServiceParts(handlers=[Handler(SPEC, handler)], consumers=[customer_events.consumer()])


definition = ServiceDefinition(
    name="projects",
    build=_build,
    specs=(SPEC,),
    metadata=tables.metadata,
)
