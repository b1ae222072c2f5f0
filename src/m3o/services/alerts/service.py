"""Wiring of the alerts service."""

from __future__ import annotations

from m3o.runtime.service import Dependencies, Handler, ServiceDefinition, ServiceParts
from m3o.services.alerts import tables
from m3o.services.alerts.collapse import Collapser
from m3o.services.alerts.destinations import destinations_from
from m3o.services.alerts.handler import Alerts
from m3o.services.alerts.proto.client import SPEC, AlertsHandler

__all__ = ["definition"]


async def _build(deps: Dependencies) -> ServiceParts:
    config = deps.config.alert
    destinations = destinations_from(config)
    handler: AlertsHandler = Alerts(
        sessions=deps.sessions,
        collapser=Collapser(deps.counters, config.collapse_window),
        destinations=destinations,
        blocklist=config.blocklist,
    )

    async def close_destinations() -> None:
        for destination in destinations:
            await destination.close()

    return ServiceParts(handlers=[Handler(SPEC, handler)], on_stop=[close_destinations])


definition = ServiceDefinition(
    name="alerts",
    build=_build,
    specs=(SPEC,),
    metadata=tables.metadata,
)
