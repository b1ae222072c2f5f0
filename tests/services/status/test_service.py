"""The service definition and the status page the HTTP front serves at ``/status/call``:
public for every role, 200 with every part OK, 500 with the unhealthy parts
``NOT_HEALTHY`` and nothing of why, on both databases."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.support import build_app, client_for
from m3o.gateway.status_call import status_routes
from m3o.runtime.auth import Account
from m3o.runtime.rpc import InProcessTransport, StaticToken
from m3o.runtime.store import SessionFactory
from m3o.services.status.proto import status_pb2 as pb
from m3o.services.status.proto.client import SPEC, StatusClient
from m3o.services.status.service import PUBLIC_METHODS, definition
from services.status.support import ADMIN, ANN, BILLING, BOB, LEAK, Probe
from support.services import AnonymousRefused, TokenAccounts, dependencies, serve

ROLES: dict[str, Account | None] = {
    "customer": ANN,
    "other customer": BOB,
    "admin": ADMIN,
    "service": BILLING,
    "anonymous": None,
}
CONFIG = {"status": {"services": "auth,customers,admin,mailchimp", "timeout": "1s"}}
ALL_OK = {"auth": "OK", "customers": "OK", "database": "OK", "counters": "OK", "events": "OK"}


async def _served(
    engine: AsyncEngine, sessions: SessionFactory, probe: Probe
) -> InProcessTransport:
    """The status service built from its definition, behind a dispatcher that knows a token
    per role and refuses anonymous callers of anything not public."""
    parts = await definition.build(dependencies("status", engine, sessions, CONFIG, health=probe))
    [handler] = parts.handlers
    assert handler.public == PUBLIC_METHODS
    tokens = {role: account for role, account in ROLES.items() if account is not None}
    return serve(
        SPEC,
        handler.implementation,
        authenticator=TokenAccounts(tokens),
        rules=AnonymousRefused(),
        public=handler.public,
    )


def _page(transport: InProcessTransport) -> httpx.AsyncClient:
    app, _ = build_app(extra_routes=status_routes(StatusClient(transport, None), timeout=10))
    return client_for(app)


def test_the_definition_serves_status_off_the_platform_api_and_owns_no_table() -> None:
    assert definition.name == "status"
    assert list(definition.specs) == [SPEC]
    assert definition.metadata is None
    assert not definition.platform_api


async def test_building_without_the_process_health_probe_is_refused(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    with pytest.raises(RuntimeError, match="health probe"):
        await definition.build(dependencies("status", engine, sessions, CONFIG))


@pytest.mark.parametrize("role", list(ROLES))
async def test_every_role_gets_the_page_and_the_rpc(
    role: str, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    transport = await _served(engine, sessions, Probe(("auth", "customers", "status")))
    headers = {"Authorization": f"Bearer {role}"} if ROLES[role] else {}

    async with _page(transport) as client:
        got = await client.get("/status/call", headers=headers)
        posted = await client.post("/status/call", json={}, headers=headers)
    by_rpc = await StatusClient(transport, StaticToken(role) if ROLES[role] else None).call(
        pb.CallRequest()
    )

    for response in (got, posted):
        assert response.status_code == 200, response.text
        assert response.json() == ALL_OK
    assert dict(by_rpc.statuses) == ALL_OK
    assert by_rpc.healthy


async def test_a_stale_token_does_not_lock_anyone_out(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    transport = await _served(engine, sessions, Probe(("auth", "customers")))

    answer = await StatusClient(transport, StaticToken("expired")).call(pb.CallRequest())

    assert dict(answer.statuses) == ALL_OK


async def test_configured_services_are_checked_within_the_configured_timeout(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    # admin and mailchimp are configured, not defined: dropped, not reported.
    probe = Probe(("auth", "customers", "status"))
    transport = await _served(engine, sessions, probe)

    async with _page(transport) as client:
        response = await client.get("/status/call")

    assert response.json() == ALL_OK
    assert sorted(probe.asked) == [("auth", 1.0), ("customers", 1.0)]


async def test_an_unhealthy_part_is_500_with_exactly_that_part_not_healthy(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    probe = Probe(("auth", "customers"), down={"customers"}, events_down=True)
    transport = await _served(engine, sessions, probe)

    async with _page(transport) as client:
        response = await client.get("/status/Call")

    assert response.status_code == 500
    assert response.json() == {
        **ALL_OK,
        "customers": "NOT_HEALTHY",
        "events": "NOT_HEALTHY",
    }
    assert LEAK not in response.text
    assert list(response.json()) == sorted(response.json())


async def test_a_status_service_that_cannot_be_reached_is_500_not_healthy() -> None:
    async with _page(InProcessTransport()) as client:  # nothing registered
        response = await client.get("/status/call")

    assert response.status_code == 500
    assert response.json() == {"status": "NOT_HEALTHY"}


@pytest.mark.parametrize(
    ("method", "body", "status"),
    [
        ("PUT", b"{}", 405),
        ("DELETE", b"", 405),
        ("HEAD", b"", 405),
        ("POST", b"{not json", 200),
        ("POST", b"\x00\xff", 200),
    ],
)
async def test_other_methods_are_refused_and_any_body_is_ignored(
    method: str, body: bytes, status: int, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    transport = await _served(engine, sessions, Probe(("auth", "customers")))

    async with _page(transport) as client:
        response = await client.request(method, "/status/call", content=body)

    assert response.status_code == status, response.text
    if status == 200:
        assert response.json() == ALL_OK
    else:
        assert response.headers["Allow"] == "GET, POST"
    if status != 200 and method != "HEAD":  # an answer to HEAD has no body
        assert response.json() == {
            "id": "api",
            "code": 405,
            "detail": "Method Not Allowed",
            "status": "Method Not Allowed",
        }
