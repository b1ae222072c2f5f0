"""Which projects a caller has: the owners their keys may have.

A key belongs to a project (its owner, the caller of every request made with it), and the
project's billing account pays. The caller's projects come from the projects service's
``List``, asked in the caller's own name (their bearer token is forwarded), so that
projects decides who is a member. A customer with no project gets their default project
there (id = the customer id).

An admin is a member of no project and has no default one: an admin names the project
(``project_id``), which is read with projects' ``Read``, again in the admin's name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from m3o.runtime.auth import CallContext
from m3o.runtime.errors import NotFound, Unauthorized

__all__ = [
    "CallersProjects",
    "ListedProject",
    "Project",
    "ProjectDirectory",
    "choose_project",
]


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    billing_account: str


class ProjectDirectory(Protocol):
    async def projects_of(self, ctx: CallContext) -> Sequence[Project]:
        """The caller's projects. Raises M3OError when they cannot be listed."""
        ...

    async def project(self, ctx: CallContext, project_id: str) -> Project | None:
        """The project ``project_id`` as the caller may see it (an admin: any), None if
        there is none. Raises M3OError when it cannot be read."""
        ...


def choose_project(ctx: CallContext, projects: Sequence[Project], wanted: str) -> Project:
    """The project a new key belongs to: ``wanted`` if it is one of the caller's, else
    NotFound; with nothing wanted the caller's default project (the one whose id is the
    caller's), else their first."""
    if wanted:
        for project in projects:
            if project.id == wanted:
                return project
        raise NotFound(ctx.endpoint, "Project not found")
    account_id = ctx.account.id if ctx.account is not None else ""
    for project in projects:
        if project.id == account_id:
            return project
    if not projects:
        raise NotFound(ctx.endpoint, "Project not found")
    return projects[0]


class ListedProject(Protocol):
    """What this service reads of a project the projects service lists."""

    @property
    def id(self) -> str: ...

    @property
    def billing_account(self) -> str: ...


ProjectLister = Callable[[Mapping[str, str]], Awaitable[Iterable[ListedProject]]]
"""Calls projects' ``List`` with the given call metadata and returns its projects."""

ProjectReader = Callable[[Mapping[str, str], str], Awaitable[ListedProject]]
"""Calls projects' ``Read`` of a project id with the given call metadata; raises NotFound
when there is no such project (or the caller may not see it)."""


class CallersProjects:
    """:class:`ProjectDirectory` over the projects service's ``List`` and ``Read``, asked
    in the caller's own name (their ``authorization`` is forwarded). A project with no
    billing account is billed to itself (a default project's id is its customer's)."""

    def __init__(self, list_projects: ProjectLister, read_project: ProjectReader) -> None:
        self._list = list_projects
        self._read = read_project

    async def projects_of(self, ctx: CallContext) -> Sequence[Project]:
        listed = await self._list(_callers_metadata(ctx))
        return [_project(p) for p in listed]

    async def project(self, ctx: CallContext, project_id: str) -> Project | None:
        try:
            return _project(await self._read(_callers_metadata(ctx), project_id))
        except NotFound:
            return None


def _callers_metadata(ctx: CallContext) -> dict[str, str]:
    authorization = ctx.metadata.get("authorization", "")
    if not authorization:
        raise Unauthorized(ctx.endpoint, "Unauthorized")
    return {"authorization": authorization}


def _project(listed: ListedProject) -> Project:
    return Project(id=listed.id, billing_account=listed.billing_account or listed.id)
