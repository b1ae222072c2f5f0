"""Which projects a caller has, and which of them owns a new key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from m3o.runtime.auth import CallContext
from m3o.runtime.errors import NotFound, Unauthorized
from m3o.services.v1.owners import CallersProjects, Project, choose_project
from services.v1.support import ADMIN, ANN, call


@dataclass(frozen=True)
class Listed:
    id: str
    billing_account: str


async def _unread(metadata: Mapping[str, str], project_id: str) -> Listed:
    raise AssertionError("read")


async def test_projects_are_listed_in_the_callers_name() -> None:
    asked: list[Mapping[str, str]] = []

    async def list_projects(metadata: Mapping[str, str]) -> list[Listed]:
        asked.append(dict(metadata))
        return [Listed("ann", "ann"), Listed("team", "boss"), Listed("solo", "")]

    found = await CallersProjects(list_projects, _unread).projects_of(call("GenerateKey", ANN))
    assert asked == [{"authorization": "Bearer token-of-ann"}]
    assert found == [
        Project("ann", "ann"),
        Project("team", "boss"),
        Project("solo", "solo"),
    ]


async def test_without_the_callers_token_nothing_is_asked() -> None:
    async def list_projects(metadata: Mapping[str, str]) -> list[Listed]:
        raise AssertionError("asked without a token")

    ctx = CallContext(service="v1", method="GenerateKey", account=ANN)
    with pytest.raises(Unauthorized):
        await CallersProjects(list_projects, _unread).projects_of(ctx)


async def test_a_named_project_is_read_in_the_callers_name() -> None:
    read: list[tuple[dict[str, str], str]] = []

    async def list_projects(metadata: Mapping[str, str]) -> list[Listed]:
        raise AssertionError("listed")

    async def read_project(metadata: Mapping[str, str], project_id: str) -> Listed:
        read.append((dict(metadata), project_id))
        if project_id == "nope":
            raise NotFound("projects.read", "Project not found")
        return Listed(project_id, "boss" if project_id == "team" else "")

    directory = CallersProjects(list_projects, read_project)
    ctx = call("GenerateKey", ADMIN)
    assert await directory.project(ctx, "team") == Project("team", "boss")
    assert await directory.project(ctx, "solo") == Project("solo", "solo")
    assert await directory.project(ctx, "nope") is None
    assert read == [
        ({"authorization": "Bearer token-of-admin-1"}, "team"),
        ({"authorization": "Bearer token-of-admin-1"}, "solo"),
        ({"authorization": "Bearer token-of-admin-1"}, "nope"),
    ]


def test_choosing_a_project() -> None:
    ctx = call("GenerateKey", ANN)
    own, team = Project("ann", "ann"), Project("team", "boss")
    assert choose_project(ctx, [team, own], "") == own
    assert choose_project(ctx, [team], "") == team
    assert choose_project(ctx, [own, team], "team") == team
    with pytest.raises(NotFound):
        choose_project(ctx, [own], "team")
    with pytest.raises(NotFound):
        choose_project(ctx, [], "")
