"""The service definition and its settings: Check public, the cron only when enabled, the
URL a run calls (this platform's own front unless configured), and the raw routes of the
HTTP front reaching the service with the front's account."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from gateway.support import client_for
from m3o.gateway import create_app
from m3o.gateway.endtoend_routes import endtoend_routes
from m3o.platform.clients import ClientFactory
from m3o.runtime.config import build_config
from m3o.runtime.counters import CounterStore
from m3o.runtime.rpc import StaticToken
from m3o.runtime.store import SessionFactory
from m3o.services.endtoend import records
from m3o.services.endtoend.handler import Endtoend
from m3o.services.endtoend.proto.client import SPEC, EndtoendClient
from m3o.services.endtoend.service import definition
from m3o.services.endtoend.settings import DEFAULT_EMAIL, settings_from
from m3o.services.endtoend.tables import metadata
from services.endtoend.support import (
    CODE,
    GATEWAY,
    SECRET,
    Gate,
    build_world,
    mail,
)
from support.services import AnonymousRefused, TokenAccounts, Unreachable, dependencies, serve


async def test_the_definition_serves_check_publicly_and_schedules_only_when_enabled(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    assert definition.name == "endtoend"
    assert definition.metadata is metadata
    assert list(definition.specs) == [SPEC]
    clients = ClientFactory(Unreachable(), None)
    parts = await definition.build(dependencies("endtoend", engine, sessions, clients=clients))
    [handler] = parts.handlers
    assert handler.spec is SPEC
    assert handler.public == frozenset({"Check"})
    assert isinstance(handler.implementation, Endtoend)
    assert parts.crons == []
    for stop in parts.on_stop:
        await stop()

    enabled = {"endtoend": {"enabled": True, "interval": "3m"}}
    parts = await definition.build(
        dependencies("endtoend", engine, sessions, enabled, clients=clients)
    )
    [cron] = parts.crons
    assert (cron.name, cron.every, cron.at_start) == ("check", timedelta(minutes=3), False)
    for stop in parts.on_stop:
        await stop()


@pytest.mark.parametrize(
    ("document", "url"),
    [
        ({}, "http://127.0.0.1:8080"),
        ({"server": {"host": "0.0.0.0", "port": 9000}}, "http://127.0.0.1:9000"),
        ({"server": {"host": "::", "port": 9000}}, "http://[::1]:9000"),
        ({"server": {"host": "10.1.2.3", "port": 80}}, "http://10.1.2.3:80"),
        ({"server": {"public_url": "https://api.example.com/"}}, "https://api.example.com"),
        (
            {"server": {"port": 1}, "endtoend": {"api_url": "http://gateway:8080/"}},
            "http://gateway:8080",
        ),
    ],
    ids=["default", "any address", "any ipv6 address", "host", "public url", "configured"],
)
def test_a_run_calls_this_platforms_front_unless_configured(
    document: dict[str, object], url: str
) -> None:
    assert settings_from(build_config(document, {})).api_url == url


def test_settings_default_to_a_reserved_address_and_the_outbox_without_mail() -> None:
    default = settings_from(build_config({}, {}))
    assert default.email == DEFAULT_EMAIL == "endtoend@example.com"
    assert default.read_outbox
    assert not default.scheduled
    assert default.run_timeout == timedelta(minutes=14)
    assert default.lease_ttl > default.run_timeout
    configured = settings_from(
        build_config(
            {
                "endtoend": {"email": " E2E@Mail.Example ", "code_wait": "1m"},
                "emails": {"enabled": True, "smtp": {"host": "smtp.example.com"}},
            },
            {},
        )
    )
    assert configured.email == "e2e@mail.example"
    assert not configured.read_outbox
    assert configured.run_timeout == timedelta(minutes=12)


def _front(world_handler: Endtoend) -> Starlette:
    transport = serve(
        SPEC,
        world_handler,
        authenticator=TokenAccounts({"gateway-token": GATEWAY}),
        rules=AnonymousRefused(),
        public=frozenset({"Check"}),
    )
    client = EndtoendClient(transport, StaticToken("gateway-token"))
    return create_app(
        {}, transport, extra_routes=endtoend_routes(client, max_body_bytes=4096, timeout=5.0)
    )


async def test_the_fronts_routes_reach_the_service_with_the_fronts_account(
    sessions: SessionFactory, counters: CounterStore
) -> None:
    world = build_world(sessions, counters, Gate(None).make)
    async with client_for(_front(world.handler)) as http:
        refused = await http.post("/endtoend/mailin?secret=wrong", content=mail())
        taken = await http.post(f"/endtoend/mailin?secret={SECRET}", content=mail())
        check = await http.get("/endtoend/check")
    assert refused.status_code == 401
    assert (taken.status_code, taken.json()) == (200, {})
    async with world.sessions() as session:
        assert await records.code_since(session, datetime(2020, 1, 1, tzinfo=UTC)) == CODE
    assert check.status_code == 500
    assert check.json()["detail"] == "No recent successful check"
