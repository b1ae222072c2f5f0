"""Wiring of the explore service."""

from __future__ import annotations

from m3o.runtime.service import Dependencies, Handler, ServiceDefinition, ServiceParts
from m3o.services.explore.catalog import Catalog
from m3o.services.explore.handler import Explore
from m3o.services.explore.proto.client import SPEC
from m3o.services.publicapi.proto.client import PublicapiClient

__all__ = ["PUBLIC_METHODS", "definition"]

PUBLIC_METHODS = frozenset(SPEC.methods)
"""Every endpoint is public (the auth service's default rules say so too)."""


async def _build(deps: Dependencies) -> ServiceParts:
    handler = Explore(catalog=Catalog(deps.clients.get(PublicapiClient)), counters=deps.counters)
    return ServiceParts(handlers=[Handler(SPEC, handler, public=PUBLIC_METHODS)])


definition = ServiceDefinition(
    name="explore",
    build=_build,
    specs=(SPEC,),
)
