"""Wiring of the v1 service."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from m3o.runtime.logging import get_logger
from m3o.runtime.service import Dependencies, Handler, ServiceDefinition, ServiceParts
from m3o.services.auth.proto.client import AuthClient
from m3o.services.projects.proto import projects_pb2 as projects_pb
from m3o.services.projects.proto.client import ProjectsClient
from m3o.services.publicapi.proto.client import PublicapiClient
from m3o.services.v1 import tables
from m3o.services.v1.catalog import PublishedApis
from m3o.services.v1.consumers import CustomerEvents, ProjectEvents
from m3o.services.v1.handler import V1
from m3o.services.v1.keys.changes import KeyChanges
from m3o.services.v1.keys.imports import LegacyImport
from m3o.services.v1.keys.mirror import KeyMirror
from m3o.services.v1.last_seen import LastSeen
from m3o.services.v1.owners import CallersProjects, ListedProject
from m3o.services.v1.proto.client import SPEC
from m3o.services.v1.settings import settings_from

__all__ = ["definition"]

_log = get_logger(__name__)


async def _build(deps: Dependencies) -> ServiceParts:
    settings = settings_from(deps.config)
    if not settings.pepper:
        _log.warning("v1.key_pepper_unset", hint="set v1.key_pepper in production")
    auth = deps.clients.get(AuthClient)
    mirror = KeyMirror(deps.counters)
    changes = KeyChanges(sessions=deps.sessions, publisher=deps.publisher, mirror=mirror, auth=auth)
    handler = V1(
        sessions=deps.sessions,
        publisher=deps.publisher,
        mirror=mirror,
        changes=changes,
        imports=LegacyImport(sessions=deps.sessions, auth=auth),
        auth=auth,
        projects=_callers_projects(deps.clients.get(ProjectsClient)),
        catalog=PublishedApis(deps.clients.get(PublicapiClient)),
        settings=settings,
    )
    return ServiceParts(
        handlers=[Handler(SPEC, handler)],
        consumers=[
            CustomerEvents(sessions=deps.sessions, changes=changes).consumer(),
            ProjectEvents(sessions=deps.sessions, changes=changes).consumer(),
            LastSeen(sessions=deps.sessions).consumer(),
        ],
    )


def _callers_projects(projects: ProjectsClient) -> CallersProjects:
    async def list_projects(metadata: Mapping[str, str]) -> Iterable[ListedProject]:
        listed = await projects.list(projects_pb.ListRequest(), metadata=metadata)
        return listed.projects

    async def read_project(metadata: Mapping[str, str], project_id: str) -> ListedProject:
        read = await projects.read(projects_pb.ReadRequest(id=project_id), metadata=metadata)
        return read.project

    return CallersProjects(list_projects, read_project)


definition = ServiceDefinition(
    name="v1",
    build=_build,
    specs=(SPEC,),
    metadata=tables.metadata,
)
