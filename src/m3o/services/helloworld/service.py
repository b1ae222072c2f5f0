"""Wiring of helloworld, the example API published to customers.

It is not on the platform API: customers reach it through ``/v1/helloworld/...`` with a
key, where calls are admitted and metered, and the gateway forwards them with a signed
token of the key's account. Its methods skip the platform's access rules: like any
upstream, it is reachable only by the gateway (in-process in ``m3o serve``, on the
cluster's internal network in the platform profile).
"""

from __future__ import annotations

from m3o.runtime.service import Dependencies, Handler, ServiceDefinition, ServiceParts
from m3o.services.helloworld.handler import Helloworld
from m3o.services.helloworld.proto.client import SPEC

__all__ = ["definition"]


async def _build(deps: Dependencies) -> ServiceParts:
    return ServiceParts(
        handlers=[Handler(SPEC, Helloworld(), public=frozenset({"Call", "Stream"}))]
    )


definition = ServiceDefinition(
    name="helloworld",
    build=_build,
    specs=(SPEC,),
    platform_api=False,
)
