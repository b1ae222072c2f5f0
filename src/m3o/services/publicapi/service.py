"""Wiring of the publicapi service."""

from __future__ import annotations

from m3o.runtime.service import Dependencies, Handler, ServiceDefinition, ServiceParts
from m3o.services.publicapi import tables
from m3o.services.publicapi.handler import Publicapi
from m3o.services.publicapi.proto.client import SPEC
from m3o.services.publicapi.reflection import fetch_descriptors

__all__ = ["PUBLIC_METHODS", "definition"]

PUBLIC_METHODS = frozenset({"Get", "List"})
"""Anyone may read the catalog (the auth service's default rules say so too)."""


async def _build(deps: Dependencies) -> ServiceParts:
    handler = Publicapi(
        sessions=deps.sessions,
        publisher=deps.publisher,
        counters=deps.counters,
        fetch_descriptors=fetch_descriptors,
    )
    return ServiceParts(handlers=[Handler(SPEC, handler, public=PUBLIC_METHODS)])


definition = ServiceDefinition(
    name="publicapi",
    build=_build,
    specs=(SPEC,),
    metadata=tables.metadata,
)
