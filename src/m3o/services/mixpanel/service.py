"""Wiring of the mixpanel service."""

from __future__ import annotations

from m3o.events import customers as customers_events
from m3o.events import requests as requests_events
from m3o.runtime.clock import utc_now
from m3o.runtime.logging import get_logger
from m3o.runtime.service import Dependencies, RetiredGroup, ServiceDefinition, ServiceParts
from m3o.services.mixpanel import tables
from m3o.services.mixpanel.consumers import Forwarder
from m3o.services.mixpanel.importer import importer_from
from m3o.services.mixpanel.owners import ProjectOwners
from m3o.services.mixpanel.records import IgnoredCustomers
from m3o.services.projects.proto.client import ProjectsClient

__all__ = ["RETIRED_WHEN_DISABLED", "definition"]


_log = get_logger(__name__)

RETIRED_WHEN_DISABLED = (
    RetiredGroup(customers_events.TOPIC),
    RetiredGroup(requests_events.TOPIC),
)
"""Disabled, the service consumes nothing: its groups are retired, so the event log does
not keep every call's request event for a group nobody reads."""


async def _build(deps: Dependencies) -> ServiceParts:
    section = deps.config.mixpanel
    if not section.enabled:
        _log.info("mixpanel.disabled", detail="no events are consumed")
        return ServiceParts(handlers=[], retired=RETIRED_WHEN_DISABLED)
    importer = importer_from(deps.config)
    forwarder = Forwarder(
        importer=importer,
        ignored=IgnoredCustomers(sessions=deps.sessions, clock=utc_now),
        owners=ProjectOwners(projects=deps.clients.get(ProjectsClient)),
        ignore_list=section.ignore_list,
        batch_size=section.batch_size,
    )

    async def close() -> None:
        await forwarder.close()  # sends what still waits, then the client goes
        await importer.close()

    return ServiceParts(handlers=[], consumers=forwarder.consumers(), on_stop=[close])


definition = ServiceDefinition(name="mixpanel", build=_build, metadata=tables.metadata)
