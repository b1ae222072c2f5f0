"""Which projects a caller has: the owners their keys may have.

A key belongs to a project (its owner, the caller of every request made with it), and the
project's billing account pays. The caller's projects come from the projects service's
``List``, asked in the caller's own name (their bearer token is forwarded), so that
projects decides who is a member. A customer with no project gets their default project
there (id = the customer id).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from m3o.runtime.auth import CallContext
from m3o.runtime.errors import NotFound, Unauthorized

__all__ = [
    "CallersProjects",
    "DefaultProjects",
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


class DefaultProjects:
    """:class:`ProjectDirectory` giving each caller only their default project (id and
    billing account = the caller's id), as the reference did; for use until the projects
    service is deployed."""

    async def projects_of(self, ctx: CallContext) -> Sequence[Project]:
        if ctx.account is None:
            return []
        return [Project(id=ctx.account.id, billing_account=ctx.account.id)]


class ListedProject(Protocol):
    """What this service reads of a project the projects service lists."""

    @property
    def id(self) -> str: ...

    @property
    def billing_account(self) -> str: ...


ProjectLister = Callable[[Mapping[str, str]], Awaitable[Iterable[ListedProject]]]
"""Calls projects' ``List`` with the given call metadata and returns its projects."""


class CallersProjects:
    """:class:`ProjectDirectory` over the projects service's ``List``, asked in the
    caller's own name (their ``authorization`` is forwarded). A project with no billing
    account is billed to itself (a default project's id is its customer's)."""

    def __init__(self, list_projects: ProjectLister) -> None:
        self._list = list_projects

    async def projects_of(self, ctx: CallContext) -> Sequence[Project]:
        authorization = ctx.metadata.get("authorization", "")
        if not authorization:
            raise Unauthorized(ctx.endpoint, "Unauthorized")
        listed = await self._list({"authorization": authorization})
        return [Project(id=p.id, billing_account=p.billing_account or p.id) for p in listed]
