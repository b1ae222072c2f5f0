"""Wiring of the mixpanel service."""

from __future__ import annotations

from m3o.runtime.clock import utc_now
from m3o.runtime.service import Dependencies, ServiceDefinition, ServiceParts
from m3o.services.mixpanel import tables
from m3o.services.mixpanel.consumers import Forwarder
from m3o.services.mixpanel.importer import importer_from
from m3o.services.mixpanel.owners import ProjectOwners
from m3o.services.mixpanel.records import IgnoredCustomers
from m3o.services.projects.proto.client import ProjectsClient

__all__ = ["definition"]


async def _build(deps: Dependencies) -> ServiceParts:
    section = deps.config.mixpanel
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
