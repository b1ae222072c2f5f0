"""Which projects a caller has, and which of them owns a new key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from m3o.runtime.auth import CallContext
from m3o.runtime.errors import NotFound, Unauthorized
from m3o.services.v1.owners import CallersProjects, DefaultProjects, Project, choose_project
from services.v1.support import ANN, call


@dataclass(frozen=True)
class Listed:
    id: str
    billing_account: str


async def test_projects_are_listed_in_the_callers_name() -> None:
    asked: list[Mapping[str, str]] = []

    async def list_projects(metadata: Mapping[str, str]) -> list[Listed]:
        asked.append(dict(metadata))
        return [Listed("ann", "ann"), Listed("team", "boss"), Listed("solo", "")]

    found = await CallersProjects(list_projects).projects_of(call("GenerateKey", ANN))
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
        await CallersProjects(list_projects).projects_of(ctx)


async def test_the_default_directory_gives_the_callers_own_project() -> None:
    assert await DefaultProjects().projects_of(call("ListKeys", ANN)) == [Project("ann", "ann")]
    assert await DefaultProjects().projects_of(call("ListKeys", None)) == []


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
