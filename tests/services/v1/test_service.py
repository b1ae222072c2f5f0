"""The service definition: its parts, its settings from config, its handler served, its
consumers fed by a real event bus."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.events import customers, requests
from m3o.platform.clients import ClientFactory
from m3o.runtime.config import build_config
from m3o.runtime.errors import NotFound
from m3o.runtime.events import Publisher
from m3o.runtime.events.sqlite import sql_event_bus
from m3o.runtime.rpc import MethodSpec, ServiceSpec, StaticToken
from m3o.runtime.rpc.fakes import FakePublisher
from m3o.runtime.service import Dependencies
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.projects.proto import projects_pb2 as projects_pb
from m3o.services.v1 import records
from m3o.services.v1.handler import V1
from m3o.services.v1.proto import v1_pb2 as pb
from m3o.services.v1.proto.client import SPEC, V1Client
from m3o.services.v1.records import KeyRow
from m3o.services.v1.service import definition
from m3o.services.v1.settings import settings_from
from m3o.services.v1.tables import metadata
from m3o.services.v1.view import KeyStatus
from services.v1.support import ANN, START
from support.services import EveryTokenIs, Unreachable, dependencies, serve


class DefaultProjects(Unreachable):
    """Services that are not there, but for projects' List, which answers the caller's
    default project (as the projects service does for a new customer)."""

    async def unary(
        self,
        spec: ServiceSpec,
        method: MethodSpec,
        request: Message,
        *,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> Message:
        if spec.service == "projects" and method.name == "List":
            assert metadata.get("authorization") == "Bearer ann-token"  # the caller's own
            default = projects_pb.Project(id=ANN.id, name="default", billing_account=ANN.id)
            return projects_pb.ListResponse(projects=[default])
        return await super().unary(spec, method, request, metadata=metadata, timeout=timeout)


def test_the_pepper_comes_from_the_v1_section_and_is_never_shown() -> None:
    settings = settings_from(build_config({"v1": {"key_pepper": "s3cret pepper"}}, {}))
    assert settings.pepper == b"s3cret pepper"
    assert "s3cret" not in repr(settings)
    assert settings_from(build_config({}, {})).pepper == b""


def deps(engine: AsyncEngine, sessions: SessionFactory, publisher: Publisher) -> Dependencies:
    return dependencies(
        "v1",
        engine,
        sessions,
        {"v1": {"key_pepper": "p"}},
        publisher=publisher,
        clients=ClientFactory(DefaultProjects(), None),
    )


async def test_definition_serves_the_handler_for_the_callers_projects_and_consumes_three_topics(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    assert definition.name == "v1"
    assert definition.metadata is metadata
    assert list(definition.specs) == [SPEC]
    parts = await definition.build(deps(engine, sessions, FakePublisher()))
    [handler] = parts.handlers
    assert handler.spec is SPEC
    assert isinstance(handler.implementation, V1)
    assert sorted(c.topic for c in parts.consumers) == ["customers", "projects", "requests"]
    assert parts.on_stop == ()

    local = serve(SPEC, handler.implementation, authenticator=EveryTokenIs(ANN))
    client = V1Client(local, StaticToken("ann-token"))
    assert list((await client.list_keys(pb.ListRequest())).api_keys) == []
    try:
        await client.revoke_key(pb.RevokeRequest(id="nope"))
    except NotFound as exc:
        assert exc == NotFound("v1.revokekey", "Not found")
    else:
        raise AssertionError("revoking an unknown key succeeded")


async def test_consumers_on_a_real_bus_block_on_ban_and_record_last_seen(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    bus = sql_event_bus(engine, poll_interval=0.05)
    parts = await definition.build(deps(engine, sessions, bus.publisher))
    for consumer in parts.consumers:
        consumer.subscribe(bus, "v1")
    row = KeyRow(
        id="k1",
        hash="ab" * 32,
        scopes=("*",),
        owner=ANN.id,
        billing_account=ANN.id,
        created_by=ANN.id,
        description="d",
        created=START,
    )
    async with transaction(sessions) as session:
        await records.insert_new(session, row)
    await bus.start()
    try:
        await bus.publisher.publish(
            customers.TOPIC,
            customers.Event(
                type=customers.EventType.EventTypeBanned,
                customer=customers.events_pb2.Customer(id=ANN.id),
            ),
        )
        for _ in range(3):
            await bus.publisher.publish(
                requests.TOPIC,
                requests.Event(
                    type=requests.EventType.EventTypeRequest,
                    request=requests.Request(api_key_id="k1"),
                ),
            )
        await bus.wait_idle(timeout=20)
    finally:
        await bus.stop()
    async with sessions() as session:
        stored = await records.find(session, "k1")
    assert stored is not None
    assert (stored.status, stored.status_message) == (KeyStatus.BLOCKED, "User has been banned")
    assert stored.last_seen is not None
    assert stored.last_seen > START + timedelta(days=1)
