"""Who pays for a project: request events name the project, the ignore list names customers.

A customer's default project has the customer's id, so an ignored customer's default
project is recognised without a lookup; any other project is read from the projects
service once per process (its billing account never changes), never once per event. A
project the projects service does not know has no owner.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection

from m3o.runtime.errors import NotFound
from m3o.services.projects.proto import projects_pb2 as projects_pb
from m3o.services.projects.proto.client import ProjectsService

__all__ = ["MAX_REMEMBERED", "ProjectOwners"]

MAX_REMEMBERED = 100_000
"""Projects whose billing account this process remembers."""


class ProjectOwners:
    def __init__(self, *, projects: ProjectsService) -> None:
        self._projects = projects
        self._owners: OrderedDict[str, str] = OrderedDict()

    async def owners(self, project_ids: Collection[str]) -> dict[str, str]:
        """The billing account of each of ``project_ids``; "" when there is none."""
        found: dict[str, str] = {}
        for project_id in sorted(set(project_ids)):
            owner = self._owners.get(project_id)
            if owner is None:
                owner = await self._read(project_id)
                self._owners[project_id] = owner
                if len(self._owners) > MAX_REMEMBERED:
                    self._owners.popitem(last=False)
            found[project_id] = owner
        return found

    async def _read(self, project_id: str) -> str:
        try:
            answer = await self._projects.read(projects_pb.ReadRequest(id=project_id))
        except NotFound:
            return ""
        return answer.project.billing_account
